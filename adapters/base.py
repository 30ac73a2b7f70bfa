"""The Adapter protocol: what a transport must do for the gateway.

This module imports ``gateway.models`` and ``gateway.errors`` only (and re-exports
``Duration`` for adapters' options) — the small, stable contract an external adapter
package codes against.

An adapter class has a pydantic ``Options`` model (its own config keys, validated at
start-up with ``extra="forbid"``) and is built as ``Cls(name=..., options=...)``.
``send`` returns a ``Receipt`` when the receiver took the message, and otherwise raises
one of ``TransientError``, ``PermanentError`` or ``OutageError`` — or ``MessageError`` (a
``PermanentError``) when the message itself cannot be encoded or carried (a header or file
name the transport refuses, too large for it), which never counts against the breaker.
Library exceptions never cross out of an adapter: translate them at the edge, ``from exc``.

An adapter that can hear back from the receiver may also have ``receive()``: an async
generator of ``models.InboundDocument`` (ack files, reply-queue messages) that the gateway
runs for as long as it serves. After each document the gateway sends ``True`` (stored:
settle it, e.g. move the file away or ack the message) or ``False`` (unreadable: set it
aside); when the gateway stops or its store fails, the generator is closed instead, and
the document must stay where it was.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from gateway import errors, models
from gateway.durations import Duration as Duration  # re-exported for adapters' options

#: control characters no header, property or file name may carry (HTAB excepted)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def carriable(fields: Mapping[str, object]) -> None:
    """Refuse a message whose header/property values hold control characters.

    Such a value cannot be carried (CR LF would split an HTTP header; NUL ends a C
    string): the failure is the message's own, so ``MessageError`` — that delivery is
    dead at once and the transport's breaker never counts it.
    """
    for name, value in fields.items():
        if isinstance(value, str) and _CONTROL.search(value):
            raise errors.MessageError(
                f"{name} holds a control character the transport cannot carry: {value!r:.80}"
            )


class AdapterOptions(BaseModel):
    """Base for adapter option models: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@runtime_checkable
class Adapter(Protocol):
    """A transport the dispatcher sends deliveries through."""

    name: str

    async def open(self) -> None:
        """Acquire connections; called once before the first send."""

    async def close(self) -> None:
        """Release every connection; called once at shutdown."""

    async def send(self, message: models.OutboundMessage) -> models.Receipt:
        """Transmit one attempt of one delivery."""
        ...

    async def check(self) -> models.Health:
        """Report whether the transport looks usable."""
        ...


class BaseAdapter:
    """Convenience base: stores name and options, no-op open/close, healthy check."""

    Options: ClassVar[type[AdapterOptions]] = AdapterOptions

    def __init__(self, *, name: str, options: AdapterOptions) -> None:
        self.name = name
        self.options = options

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, message: models.OutboundMessage) -> models.Receipt:
        raise NotImplementedError

    async def check(self) -> models.Health:
        return models.Health(ok=True, detail="no check implemented")
