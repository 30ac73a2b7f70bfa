"""AMQP 1.0 application properties as an AMQP 0-9-1 consumer receives them. Pure.

A producer speaking AMQP 1.0 to RabbitMQ 3.x (plugin ``rabbitmq_amqp1_0``) puts the
CloudEvents attributes in the message's application-properties section (``cloudEvents_id``,
…, the AMQP binding). The plugin hands that section to AMQP 0-9-1 consumers unconverted, as
the header ``x-amqp-1.0-app-properties``: the section in AMQP 1.0's own type encoding (a
described map, AMQP 1.0 part 1 §1.6 and part 3 §3.2.5). RabbitMQ 4 converts the same section
into plain headers. ``expand`` gives both the same shape: plain headers.

The application-properties section holds only simple types (string keys; null, booleans,
integers, floats, timestamps, uuids, binary, strings, symbols), which is all this decodes.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gateway import errors

APP_PROPERTIES_HEADER = "x-amqp-1.0-app-properties"
_APPLICATION_PROPERTIES = 0x74  # the section's descriptor code

#: fixed-width codes → (struct format, size)
_FIXED = {
    0x50: (">B", 1),  # ubyte
    0x51: (">b", 1),  # byte
    0x52: (">B", 1),  # smalluint
    0x53: (">B", 1),  # smallulong
    0x54: (">b", 1),  # smallint
    0x55: (">b", 1),  # smalllong
    0x60: (">H", 2),  # ushort
    0x61: (">h", 2),  # short
    0x70: (">I", 4),  # uint
    0x71: (">i", 4),  # int
    0x72: (">f", 4),  # float
    0x73: (">I", 4),  # char (UTF-32)
    0x80: (">Q", 8),  # ulong
    0x81: (">q", 8),  # long
    0x82: (">d", 8),  # double
    0x83: (">q", 8),  # timestamp (ms since the epoch)
}
_CONSTANTS: dict[int, Any] = {0x40: None, 0x41: True, 0x42: False, 0x43: 0, 0x44: 0}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise ValueError("truncated AMQP 1.0 value")
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk

    def value(self) -> Any:
        code = self.take(1)[0]
        if code == 0x00:  # described: a descriptor, then the value it describes
            self.value()
            return self.value()
        if code in _CONSTANTS:
            return _CONSTANTS[code]
        if code == 0x56:
            return self.take(1)[0] != 0
        if code in _FIXED:
            fmt, size = _FIXED[code]
            number = struct.unpack(fmt, self.take(size))[0]
            if code == 0x83:
                return datetime.fromtimestamp(number / 1000, tz=UTC)
            return chr(number) if code == 0x73 else number
        if code == 0x98:
            return uuid.UUID(bytes=self.take(16))
        if code in (0xA0, 0xA1, 0xA3, 0xB0, 0xB1, 0xB3):
            size = self.take(1)[0] if code < 0xB0 else struct.unpack(">I", self.take(4))[0]
            raw = self.take(size)
            return raw if code in (0xA0, 0xB0) else raw.decode("utf-8")
        if code in (0xC1, 0xD1):  # map8 / map32: size, count, then key, value, …
            width = 1 if code == 0xC1 else 4
            self.take(width)
            count = int.from_bytes(self.take(width), "big")
            items = [self.value() for _ in range(count)]
            return dict(zip(items[::2], items[1::2], strict=True))
        raise ValueError(f"AMQP 1.0 type 0x{code:02x} is not a simple type")


def decode_application_properties(data: bytes) -> dict[str, Any]:
    """The application-properties section (described or bare map) → a dict."""
    data = bytes(data)
    reader = _Reader(data)
    if data[:1] == b"\x00":
        reader.take(1)
        descriptor = reader.value()
        if descriptor not in (_APPLICATION_PROPERTIES, "amqp:application-properties:map"):
            raise ValueError(f"descriptor {descriptor!r} is not application-properties")
    found = reader.value()
    if not isinstance(found, dict) or not all(isinstance(k, str) for k in found):
        raise ValueError("application-properties is a map with string keys")
    return found


def expand(headers: Mapping[str, Any]) -> dict[str, Any]:
    """AMQP 0-9-1 headers with RabbitMQ 3.x's encoded AMQP 1.0 application properties
    unpacked beside them (``InvalidInput`` naming the header when they cannot be read)."""
    out = dict(headers)
    blob = out.pop(APP_PROPERTIES_HEADER, None)
    if blob is None:
        return out
    try:
        if not isinstance(blob, bytes | bytearray):
            raise ValueError("expected the encoded section as bytes")
        decoded = decode_application_properties(bytes(blob))
    except (ValueError, UnicodeDecodeError, struct.error, OverflowError, OSError) as exc:
        raise errors.InvalidInput(
            f"{APP_PROPERTIES_HEADER} is not an AMQP 1.0 application-properties section: {exc}",
            details=[{"loc": f"header.{APP_PROPERTIES_HEADER}", "msg": str(exc)}],
        ) from exc
    return {**decoded, **out}
