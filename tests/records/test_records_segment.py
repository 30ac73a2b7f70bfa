"""Archive segments: written whole and named by content, read back verified, a flipped byte
reported with the segment and the record it hit (real files in a directory)."""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from datetime import UTC, datetime

import pytest
from records_helpers import make_record

from gateway.records import crypto, errors, segment, storage

NOW = datetime(2026, 12, 3, 6, 0, 1, 250000, tzinfo=UTC)
KINDS = ["entry_summary", "isf", "manifest.ocean", "entry", "protest"]


def batch(n: int = 10) -> list[dict]:
    return [make_record(KINDS[i % len(KINDS)], i) for i in range(n)]


@pytest.fixture
def store(tmp_path) -> storage.DirectoryStorage:
    return storage.DirectoryStorage(tmp_path / "segments")


def test_a_segment_round_trips_its_records_and_header(store):
    """Every record comes back equal, in order; the header says what the segment holds."""
    records = batch()
    written = segment.write_segment(store, records, created_at=NOW)
    assert store.list() == [written.name]
    data = store.get(written.name)
    assert written.sha256 == hashlib.sha256(data).hexdigest()
    assert written.name == f"20261203T060001Z-{written.sha256[:32]}.seg"
    seg = segment.open_segment(store, written.name, expected_sha256=written.sha256)
    assert list(seg) == records
    assert (seg.header.format, seg.header.created_at, seg.header.record_count) == (1, NOW, 10)
    assert seg.header.key_id is None
    assert [e.id for e in seg.header.entries] == [r["filing"]["id"] for r in records]
    assert seg.record(records[3]["filing"]["id"]) == records[3]


def test_records_are_compressed(store):
    records = batch(50)
    written = segment.write_segment(store, records, created_at=NOW)
    raw = sum(len(json.dumps(r)) for r in records)
    assert written.size < raw / 2


def test_an_encrypted_segment_keeps_no_payload_in_clear(store, keyring):
    """Sealed frames: the importer number is nowhere in the file, even decompressed."""
    records = batch(5)
    written = segment.write_segment(store, records, created_at=NOW, keyring=keyring)
    seg = segment.open_segment(store, written.name, keyring=keyring)
    assert seg.header.key_id == "k1"
    assert list(seg) == records
    data = store.get(written.name)
    body = data[-sum(e.length for e in seg.header.entries) :]
    for entry in seg.header.entries:
        frame = body[entry.offset : entry.offset + entry.length]
        with pytest.raises(zlib.error):
            zlib.decompress(frame)
    assert b"12-345678900" not in data


def test_an_encrypted_segment_without_its_key_is_an_error_naming_the_key(store, keyring):
    written = segment.write_segment(store, batch(2), created_at=NOW, keyring=keyring)
    seg = segment.open_segment(store, written.name)
    with pytest.raises(errors.UnknownKey, match="key 'k1'") as caught:
        list(seg)
    assert written.name in caught.value.message
    wrong = crypto.Keyring({"k1": os.urandom(32)})
    with pytest.raises(errors.OpenFailed, match="key 'k1'") as failed:
        segment.open_segment(store, written.name, keyring=wrong).record("fil_isf_000001")
    assert "record fil_isf_000001" in failed.value.message


def flip(store, name: str, at: int) -> None:
    path = store.path(name)
    data = bytearray(path.read_bytes())
    data[at] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("position", [0, 4, 9])
@pytest.mark.parametrize("encrypted", [False, True])
def test_a_flipped_byte_names_the_segment_and_the_record(store, keyring, position, encrypted):
    """One byte changed inside record k: opening fails naming the segment and record k."""
    records = batch()
    written = segment.write_segment(
        store, records, created_at=NOW, keyring=keyring if encrypted else None
    )
    entry = written.entries[position]
    body = written.size - sum(e.length for e in written.entries)
    flip(store, written.name, body + entry.offset + entry.length // 2)
    with pytest.raises(errors.SegmentDamaged) as caught:
        segment.open_segment(store, written.name, keyring=keyring)
    exc = caught.value
    assert (exc.segment, exc.record, exc.position) == (written.name, entry.id, position)
    assert written.name in exc.message
    assert entry.id in exc.message
    assert exc.details == {"segment": written.name, "record": entry.id, "position": position}


def test_a_flipped_byte_in_the_header_is_named_as_such(store):
    written = segment.write_segment(store, batch(3), created_at=NOW)
    flip(store, written.name, 20)  # inside the header's JSON
    with pytest.raises(errors.SegmentDamaged, match="header") as caught:
        segment.open_segment(store, written.name)
    assert caught.value.record is None


@pytest.mark.parametrize(
    ("change", "match"), [(b"extra", "5 bytes were added"), (None, "is damaged")]
)
def test_a_truncated_or_extended_segment_is_damaged(store, change, match):
    records = batch(3)
    written = segment.write_segment(store, records, created_at=NOW)
    path = store.path(written.name)
    data = path.read_bytes()
    path.write_bytes(data + change if change else data[:-7])
    with pytest.raises(errors.SegmentDamaged, match=match) as caught:
        segment.open_segment(store, written.name)
    if change is None:  # the cut record is named
        assert caught.value.record == records[-1]["filing"]["id"]


def test_the_audit_chains_hash_is_checked_over_the_names(store):
    """A caller's expected hash (from the audit chain) wins over the one in the name."""
    written = segment.write_segment(store, batch(2), created_at=NOW)
    segment.open_segment(store, written.name, expected_sha256=written.sha256)
    with pytest.raises(errors.SegmentDamaged, match="expected"):
        segment.open_segment(store, written.name, expected_sha256="0" * 64)


def test_an_unknown_record_or_segment_is_not_found(store):
    written = segment.write_segment(store, batch(2), created_at=NOW)
    with pytest.raises(errors.SegmentMissing, match="no record 'fil_nope'"):
        segment.open_segment(store, written.name).record("fil_nope")
    with pytest.raises(errors.SegmentMissing):
        segment.open_segment(store, "20260101T000000Z-" + "0" * 32 + ".seg")


@pytest.mark.parametrize(
    ("records", "field", "position"),
    [
        ([{"deliveries": []}], "filing", 0),
        ([make_record(), {"filing": {"reference": "X"}}], "filing.id", 1),
        ([make_record(), make_record()], "filing.id", 1),
        ([{"filing": {"id": "fil_1", "when": datetime(2026, 1, 1)}}], "record", 0),
        ([{"filing": {"id": "fil_1", "raw": b"bytes"}}], "record", 0),
        (["not a dict"], "record", 0),
        ([], "record", 0),
    ],
)
def test_a_bad_record_is_refused_naming_its_position_and_field(store, records, field, position):
    with pytest.raises(errors.BadRecord) as caught:
        segment.write_segment(store, records, created_at=NOW)
    assert (caught.value.field, caught.value.position) == (field, position)
    assert store.list() == []
