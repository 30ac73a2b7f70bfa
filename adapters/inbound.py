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

from gateway import models

#: one document from ``receive()``; the model lives in the small contract, ``gateway.models``
InboundDocument = models.InboundDocument
