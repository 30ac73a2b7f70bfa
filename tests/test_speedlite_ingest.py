"""Issue 18, SQLite ingest: the cheaper parts of a request keep their contracts (request ids
unique across processes, log timestamps as structlog's, the ack-due index narrowed)."""

from __future__ import annotations

import os
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from gateway import logs
from gateway.api import errors as api_errors
from gateway.store import sansio, sqlite


def test_request_ids_are_32_hex_digits_and_never_repeat_in_a_process() -> None:
    ids = [api_errors.new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_a_forked_worker_draws_request_ids_of_its_own() -> None:
    """``[gateway] workers = N`` forks: a child must not repeat its parent's ids."""
    parent = api_errors.new_request_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id, then exit at once
        try:
            os.write(write, api_errors.new_request_id().encode())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    next_parent = api_errors.new_request_id()
    assert child[:16] != parent[:16]  # another random part
    assert child not in (parent, next_parent)


@pytest.mark.parametrize(
    "ns",
    [
        1_764_000_000_123_456_789,  # a fraction
        1_764_000_000_000_000_000,  # a whole second: isoformat writes no fraction
        1_764_000_000_000_999_999,  # under a microsecond: no fraction either
        1_764_000_059_999_999_000,  # the last microsecond of a minute
    ],
)
def test_the_log_timestamp_reads_as_structlogs(ns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    stamp = logs._Timestamp()
    for t in (ns - 1_000_000_000, ns):  # the second before, then the one asked: cache moves on
        monkeypatch.setattr(logs.time, "time_ns", lambda t=t: t)
        got = stamp(None, "info", {})["timestamp"]
        # TimeStamper(fmt="iso", utc=True) writes datetime.now(UTC).isoformat() with "Z"
        want = datetime.fromtimestamp(t // 1000 / 1e6, UTC).isoformat().replace("+00:00", "Z")
        assert got == want


def test_a_line_with_an_exception_still_carries_its_traceback() -> None:
    import io
    import json

    stream = io.StringIO()
    logs.configure(fmt="json", level="info", stream=stream)
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger("t").exception("it.failed")
    structlog.get_logger("t").info("it.ok")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert "ValueError: boom" in first["exception"] and "exc_info" not in first
    assert "exception" not in second and second["event"] == "it.ok"


async def test_a_delivery_with_no_ack_due_stays_out_of_the_ack_due_index(tmp_path: Path) -> None:
    """Migration 11: only deliveries with an ack deadline enter ``deliveries_ack_due``, and
    the two queries that read it (flag overdue acks, extend deadlines) walk it on a
    database without ANALYZE statistics (a gateway's), not every delivered delivery."""
    path = tmp_path / "gw.db"
    store = sqlite.SqliteStore(path)
    await store.open()
    try:
        assert await store.migrate() >= 11
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO filings (id, filing_type, environment, reference, filer_code, body_hash, "
        "ordering_key, content_type, payload, payload_is_json, metadata, source, received_at, "
        "status, updated_at) VALUES ('fil_1', 'isf', 'cert', 'R1', 'XYZ', 'h', 'R1', "
        "'application/json', '{}', 1, '{}', 'api:t', 1, 'delivered', 1)"
    )
    for i, ack_due in enumerate([None, None, 5_000, None]):
        conn.execute(
            "INSERT INTO deliveries (id, filing_seq, filing_id, adapter, ordering_key, state, "
            "available_at, created_at, updated_at, ack_due_at) "
            "VALUES (?, 1, 'fil_1', 'noop', 'R1', 'delivered', 1, 1, 1, ?)",
            (f"dlv_{i}", ack_due),
        )
    conn.commit()
    [(entries,)] = conn.execute(
        "SELECT sum(ncell) FROM dbstat WHERE name = 'deliveries_ack_due' AND pagetype = 'leaf'"
    ).fetchall()
    assert entries == 1  # the one with an ack due; three without stay out
    named = sansio.queries("sqlite")
    for name, args in (("flag_overdue", (1,)), ("extend_ack_deadlines", (1, "noop"))):
        plan = conn.execute(f"EXPLAIN QUERY PLAN {named[name]}", args).fetchall()
        assert any("deliveries_ack_due" in row[3] for row in plan), (name, plan)
    flagged = conn.execute(named["flag_overdue"], (6_000,)).fetchall()
    assert [row[0] for row in flagged] == ["dlv_2"]
    conn.close()
