"""What the records room raises. Each error names the thing at fault (the key id, the
segment, the record, the field) so an operator can act on the message alone.

They extend ``gateway.errors`` so the API's error middleware maps them like any other
``GatewayError``; phase 2 may move them into ``gateway/errors.py`` beside the rest.
"""

from __future__ import annotations

from typing import Any

from gateway import errors


class KeyringError(errors.ConfigError):
    """The records keyring is not usable (missing, malformed or duplicate key)."""

    def __init__(
        self, message: str | None = None, *, kid: str | None = None, key: str | None = None
    ) -> None:
        super().__init__(message, key=key or "records.keys")
        #: the key id at fault, when one is known
        self.kid = kid


class SealError(errors.GatewayError):
    """A sealed value cannot be opened."""

    code = "sealed_value_unreadable"
    status = 500

    def __init__(self, message: str | None = None, *, kid: str | None = None) -> None:
        super().__init__(message, details={"kid": kid} if kid else None)
        #: the key id the value names, when it could be read
        self.kid = kid


class UnknownKey(SealError):
    """The value was sealed with a key the keyring does not hold."""


class OpenFailed(SealError):
    """The value does not open with its key: a wrong key, or the value was altered or
    moved from another record."""


class NotSealed(SealError):
    """The value is not a sealed value (plaintext is never returned as if it were)."""


class StorageError(errors.GatewayError):
    """The segment storage failed."""

    code = "records_storage"
    status = 503


class BadName(errors.InvalidInput):
    """Not a valid segment name."""


class SegmentMissing(errors.NotFound):
    """No such segment."""

    def __init__(self, message: str | None = None, *, segment: str) -> None:
        super().__init__(message or f"segment {segment!r} does not exist")
        self.segment = segment


class SegmentDamaged(errors.GatewayError):
    """An archive segment does not match its hash: a byte was changed, lost or added."""

    code = "segment_damaged"
    status = 500

    def __init__(
        self,
        message: str,
        *,
        segment: str,
        record: str | None = None,
        position: int | None = None,
    ) -> None:
        details: dict[str, Any] = {"segment": segment}
        if record is not None:
            details["record"] = record
        if position is not None:
            details["position"] = position
        super().__init__(message, details=details)
        #: the segment's name
        self.segment = segment
        #: the id of the damaged record (a filing id), when the damage could be located
        self.record = record
        #: its position in the segment (0-based), when located
        self.position = position


class BadRecord(errors.InvalidInput):
    """A record handed to the segment writer lacks a field the archive needs."""

    def __init__(self, message: str, *, position: int, field: str) -> None:
        super().__init__(
            f"record {position}: {field}: {message}",
            details=[{"loc": f"records[{position}].{field}", "msg": message}],
        )
        self.position = position
        self.field = field


class BadQuery(errors.InvalidInput):
    """A records search names an unknown field, a bad date or a bad cursor."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(f"{field}: {message}", details=[{"loc": field, "msg": message}])
        self.field = field
