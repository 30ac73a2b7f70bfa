"""What an adapter's optional ``receive()`` hands back: one document from the receiver.

``receive()`` is an async generator of ``InboundDocument`` (an ack file in an SFTP inbox,
a message on an AMQP reply queue). After each document the caller sends a verdict with
``asend``: ``True`` (or ``None``, a plain ``async for``) means "stored: settle it" — the
adapter removes or archives the file, or acks the message; ``False`` means "unreadable: set
it aside" — the file goes to a ``failed`` folder, the message is rejected without requeue
(so a dead-letter exchange can catch it). When the generator is closed before a verdict
(the gateway stops), the document stays where it was and is read again next time.

Only the document crosses this line; what it *means* (which delivery it acknowledges) is
decided by the gateway, not by the adapter.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class InboundDocument(BaseModel):
    """A document an adapter's ``receive()`` picked up (an ack file, a reply message)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Where it came from: file name or message id.")
    content_type: str = Field(description="Media type, e.g. `application/edi-x12`.")
    body: bytes = Field(description="The raw document, as the receiver sent it.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Transport headers (AMQP message headers), as text."
    )
