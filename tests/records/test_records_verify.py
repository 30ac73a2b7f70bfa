"""``records verify``: the segments on disk against the hashes the audit chain holds."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from records_helpers import make_record

from gateway.records import crypto, segment, storage, verify

NOW = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)


@pytest.fixture
def archive(tmp_path, keyring):
    """Three encrypted segments of 4 records, and the (name, sha256) pairs the chain holds."""
    store = storage.DirectoryStorage(tmp_path / "segments")
    chain = []
    for s in range(3):
        records = [make_record("isf", 4 * s + i) for i in range(4)]
        written = segment.write_segment(
            store, records, created_at=NOW + timedelta(minutes=s), keyring=keyring
        )
        chain.append((written.name, written.sha256))
    return store, chain


def test_an_intact_archive_verifies(archive, keyring):
    store, chain = archive
    report = verify.verify(store, chain, keyring=keyring, deep=True)
    assert report.passed
    assert report.ok == sorted(name for name, _ in chain)
    assert report.records == 12


def test_missing_extra_and_altered_segments_are_each_flagged(archive, keyring):
    """A deleted segment, one the chain never saw, one with a flipped byte."""
    store, chain = archive
    (gone, _), (altered, _), _ = chain
    store.delete(gone)
    path = store.path(altered)
    data = bytearray(path.read_bytes())
    data[-10] ^= 1  # inside the last record
    path.write_bytes(bytes(data))
    planted = segment.write_segment(store, [make_record("isf", 99)], created_at=NOW)
    report = verify.verify(store, chain, keyring=keyring)
    assert not report.passed
    assert report.of("missing") == [gone]
    assert report.of("extra") == [planted.name]
    assert report.of("altered") == [altered]
    (problem,) = [p for p in report.problems if p.kind == "altered"]
    assert problem.record == "fil_isf_000007"
    assert altered in problem.message
    assert "fil_isf_000007" in problem.message
    assert report.ok == [chain[2][0]]


def test_a_segment_swapped_for_a_valid_other_one_is_altered(archive):
    """The file is a well-formed segment, but not the one the chain entered."""
    store, chain = archive
    name, _ = chain[0]
    other = store.get(chain[1][0])
    store.path(name).write_bytes(other)
    report = verify.verify(store, chain)
    assert report.of("altered") == [name]
    assert "another segment than the one expected" in report.problems[0].message


def test_deep_verify_proves_the_keys_still_open_the_archive(archive):
    """Without the right key a deep verify reports the segment unreadable, naming the key."""
    store, chain = archive
    assert verify.verify(store, chain).passed  # hashes alone need no key
    wrong = crypto.Keyring({"k1": os.urandom(32)})
    report = verify.verify(store, chain, keyring=wrong, deep=True)
    assert report.of("unreadable") == sorted(name for name, _ in chain)
    assert all("key 'k1'" in p.message for p in report.problems)
