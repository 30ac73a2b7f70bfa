"""The archive segment: one immutable, compressed (optionally encrypted) file holding a
batch of finished filings, each with its deliveries, receipts, acks, callbacks and audit
rows.

A record is a JSON-able dict whose ``filing`` holds the filing row (``filing["id"]`` is the
record's id); the other keys (``deliveries``, ``acks``, ``callbacks``, ``audit``, …) are kept
as given, aware datetimes (PostgreSQL's) written as ISO 8601 strings. Layout::

    b"EDIGWSEG"                      magic, 8 bytes
    header length                    4 bytes, big-endian
    header                           canonical JSON (UTF-8):
        {"format": 1, "created_at": "2026-12-03T06:00:00.000000Z", "record_count": n,
         "compression": "zlib", "key_id": "k1" | null,
         "records": [[id, offset, length, sha256/128 hex], ...]}
    frames                           one a record, at offset (from the end of the header):
                                     zlib(canonical JSON of the record), then sealed with the
                                     keyring's current key when one is given (AES-GCM, bound
                                     to "segment-record:" + the record id)

The segment's name is ``<created_at>-<first 32 hex of its SHA-256>.seg``: named by content,
sorted by time. ``Written.sha256`` (of the whole file) is what the caller enters in the audit
chain; the reader re-hashes the file before it hands out a record and names the damaged
record (by each frame's own hash in the header) when a byte was flipped.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.records import crypto, errors, storage

MAGIC = b"EDIGWSEG"
FORMAT = 1
SUFFIX = ".seg"
_LEN = struct.Struct(">I")
_PREFIX = len(MAGIC) + _LEN.size
#: the name the writer gives: <UTC time>-<32 hex of the file's SHA-256>.seg
NAME = re.compile(r"(\d{8}T\d{6}Z)-([0-9a-f]{32})\.seg")


def _json_default(value: object) -> str:
    """Times as asyncpg hands them become ISO 8601 with their offset."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-able")


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
)


@dataclass(frozen=True, kw_only=True)
class Entry:
    """Where one record sits in a segment."""

    #: the record's id (its filing id)
    id: str
    #: 0-based position in the segment
    position: int
    #: byte offset of its frame from the end of the header
    offset: int
    #: the frame's length in bytes
    length: int
    #: the first 32 hex digits of the frame's SHA-256
    digest: str


@dataclass(frozen=True, kw_only=True)
class Header:
    """A segment's header."""

    format: int
    created_at: datetime
    record_count: int
    compression: str
    #: the key that sealed the frames (None: not encrypted)
    key_id: str | None
    entries: tuple[Entry, ...]


@dataclass(frozen=True, kw_only=True)
class Written:
    """What ``write_segment`` stored: the caller enters ``name`` and ``sha256`` in the
    audit chain and ``entries`` in the search index."""

    name: str
    #: SHA-256 (hex) of the whole file
    sha256: str
    size: int
    header: Header

    @property
    def entries(self) -> tuple[Entry, ...]:
        return self.header.entries


def _aad(record_id: str) -> bytes:
    return b"segment-record:" + record_id.encode("utf-8")


def _digest(frame: bytes | memoryview) -> str:
    return hashlib.sha256(frame).hexdigest()[:32]


def _record_id(record: object, position: int) -> str:
    if not isinstance(record, Mapping):
        raise errors.BadRecord("a record is a JSON object", position=position, field="record")
    filing = record.get("filing")
    if not isinstance(filing, Mapping):
        raise errors.BadRecord("missing, or not an object", position=position, field="filing")
    rid = filing.get("id")
    if not isinstance(rid, str) or not rid:
        raise errors.BadRecord("missing, or not a string", position=position, field="filing.id")
    return rid


def build_segment(
    records: Sequence[Mapping[str, Any]],
    *,
    created_at: datetime,
    keyring: crypto.Keyring | None = None,
    level: int = 6,
) -> tuple[Written, bytes]:
    """The segment file for ``records`` (in memory) and what it holds."""
    if not records:
        raise errors.BadRecord("a segment holds at least one record", position=0, field="record")
    if created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware")
    created_at = created_at.astimezone(UTC)
    frames, entries, seen, offset = [], [], set(), 0
    for position, record in enumerate(records):
        rid = _record_id(record, position)
        if rid in seen:
            raise errors.BadRecord(f"{rid!r} appears twice", position=position, field="filing.id")
        seen.add(rid)
        try:
            text = _CANONICAL.encode(record)
        except (TypeError, ValueError) as exc:
            raise errors.BadRecord(
                f"not JSON-able ({exc})", position=position, field="record"
            ) from None
        frame = zlib.compress(text.encode("utf-8"), level)
        if keyring is not None:
            frame = keyring.seal(frame, aad=_aad(rid))
        frames.append(frame)
        entries.append(
            Entry(
                id=rid, position=position, offset=offset, length=len(frame), digest=_digest(frame)
            )
        )
        offset += len(frame)
    header = Header(
        format=FORMAT,
        created_at=created_at,
        record_count=len(entries),
        compression="zlib",
        key_id=keyring.current if keyring is not None else None,
        entries=tuple(entries),
    )
    head = _CANONICAL.encode(
        {
            "format": FORMAT,
            "created_at": created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "record_count": header.record_count,
            "compression": header.compression,
            "key_id": header.key_id,
            "records": [[e.id, e.offset, e.length, e.digest] for e in entries],
        }
    ).encode("utf-8")
    data = b"".join([MAGIC, _LEN.pack(len(head)), head, *frames])
    sha = hashlib.sha256(data).hexdigest()
    name = f"{created_at:%Y%m%dT%H%M%S}Z-{sha[:32]}{SUFFIX}"
    return Written(name=name, sha256=sha, size=len(data), header=header), data


def write_segment(
    store: storage.SegmentStorage,
    records: Sequence[Mapping[str, Any]],
    *,
    created_at: datetime,
    keyring: crypto.Keyring | None = None,
) -> Written:
    """Build the segment for ``records`` and put it (atomically) into ``store``."""
    written, data = build_segment(records, created_at=created_at, keyring=keyring)
    store.put(written.name, data)
    return written


def _parse_header(name: str, data: bytes) -> tuple[Header, int]:
    """The header and where the frames start; ``SegmentDamaged`` if it cannot be read."""
    if len(data) < _PREFIX or data[: len(MAGIC)] != MAGIC:
        raise errors.SegmentDamaged(
            f"segment {name}: not a segment file (no EDIGWSEG magic)", segment=name
        )
    (size,) = _LEN.unpack_from(data, len(MAGIC))
    try:
        raw = json.loads(data[_PREFIX : _PREFIX + size].decode("utf-8"))
        entries = tuple(
            Entry(id=str(rid), position=i, offset=int(off), length=int(ln), digest=str(dg))
            for i, (rid, off, ln, dg) in enumerate(raw["records"])
        )
        header = Header(
            format=int(raw["format"]),
            created_at=datetime.strptime(raw["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=UTC
            ),
            record_count=int(raw["record_count"]),
            compression=str(raw["compression"]),
            key_id=raw["key_id"],
            entries=entries,
        )
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise errors.SegmentDamaged(
            f"segment {name}: the header is damaged ({type(exc).__name__})", segment=name
        ) from None
    if header.format != FORMAT:
        raise errors.SegmentDamaged(
            f"segment {name}: format {header.format} is not one this gateway reads ({FORMAT})",
            segment=name,
        )
    if header.record_count != len(entries) or header.compression != "zlib":
        raise errors.SegmentDamaged(f"segment {name}: the header is damaged", segment=name)
    return header, _PREFIX + size


def expected_hash(name: str) -> str | None:
    """The hash prefix a writer-given name carries (None for another name)."""
    match = NAME.fullmatch(name)
    return match.group(2) if match else None


class Segment:
    """A segment read back: its header, then its records, verified.

    Opening re-hashes the whole file against ``expected_sha256`` (the audit chain's) or, if
    none is given, against the hash in its name; on a mismatch the damaged record is named.
    """

    def __init__(
        self,
        name: str,
        data: bytes,
        *,
        keyring: crypto.Keyring | None = None,
        expected_sha256: str | None = None,
    ) -> None:
        self.name = name
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.size = len(data)
        self._data = data
        self._keyring = keyring
        want = expected_sha256 or expected_hash(name)
        if want is not None and not self.sha256.startswith(want):
            raise locate_damage(name, data, want, self.sha256)
        self.header, self._body = _parse_header(name, data)
        end = self._body + sum(e.length for e in self.header.entries)
        if end != len(data):
            raise errors.SegmentDamaged(
                f"segment {name}: {len(data)} bytes where the header accounts for {end}",
                segment=name,
            )
        self._by_id = {e.id: e for e in self.header.entries}

    def __len__(self) -> int:
        return self.header.record_count

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Every record, in order, decoded one at a time."""
        for entry in self.header.entries:
            yield self.decode(entry)

    def record(self, record_id: str) -> dict[str, Any]:
        """One record by its id."""
        entry = self._by_id.get(record_id)
        if entry is None:
            raise errors.SegmentMissing(
                f"segment {self.name} holds no record {record_id!r}", segment=self.name
            )
        return self.decode(entry)

    def decode(self, entry: Entry) -> dict[str, Any]:
        start = self._body + entry.offset
        frame = self._data[start : start + entry.length]
        if _digest(frame) != entry.digest:
            raise _damaged(self.name, entry)
        if self.header.key_id is not None:
            frame = self._open(entry, frame)
        try:
            value = json.loads(zlib.decompress(frame).decode("utf-8"))
        except (zlib.error, UnicodeDecodeError, ValueError):
            raise _damaged(self.name, entry) from None
        if not isinstance(value, dict):
            raise _damaged(self.name, entry)
        return value

    def _open(self, entry: Entry, frame: bytes) -> bytes:
        where = f"segment {self.name}, record {entry.id}"
        if self._keyring is None:
            raise errors.UnknownKey(
                f"{where}: encrypted with key {self.header.key_id!r}, and no records key "
                "is configured",
                kid=self.header.key_id,
            )
        try:
            return self._keyring.open(frame, aad=_aad(entry.id))
        except errors.SealError as exc:
            raise type(exc)(f"{where}: {exc}", kid=exc.kid) from None


def _damaged(name: str, entry: Entry) -> errors.SegmentDamaged:
    return errors.SegmentDamaged(
        f"segment {name}: record {entry.position} ({entry.id}) is damaged: its bytes do not "
        "match the hash the segment holds for them",
        segment=name,
        record=entry.id,
        position=entry.position,
    )


def locate_damage(name: str, data: bytes, want: str, got: str) -> errors.SegmentDamaged:
    """The error for a segment whose hash is not ``want``: the first damaged record when the
    frames' own hashes find one, else the header or the length."""
    try:
        header, body = _parse_header(name, data)
    except errors.SegmentDamaged as exc:
        return errors.SegmentDamaged(
            f"{exc.message}; its SHA-256 is {got[:16]}…, expected {want[:16]}…", segment=name
        )
    for entry in header.entries:
        start = body + entry.offset
        if _digest(data[start : start + entry.length]) != entry.digest:
            return _damaged(name, entry)
    end = body + sum(e.length for e in header.entries)
    where = (
        f"{len(data) - end} bytes were added at its end"
        if len(data) > end
        else f"it is {end - len(data)} bytes short"
        if len(data) < end
        else "its records match their own hashes, so its header was changed or it is "
        "another segment than the one expected"
    )
    return errors.SegmentDamaged(
        f"segment {name}: its SHA-256 is {got[:16]}…, expected {want[:16]}…; {where}",
        segment=name,
    )


def open_segment(
    store: storage.SegmentStorage,
    name: str,
    *,
    keyring: crypto.Keyring | None = None,
    expected_sha256: str | None = None,
) -> Segment:
    """Read and verify segment ``name`` from ``store``."""
    return Segment(name, store.get(name), keyring=keyring, expected_sha256=expected_sha256)
