"""WAL checkpoints off the SQLite commit path (``gateway.sqlite_wal.Checkpointer``): a
commit never copies the WAL into the database file, the checkpointer's connection does,
and under a steady write load the WAL stays bounded; and a lone operation's transaction
needs no SAVEPOINT."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from gateway import errors, sqlite_wal, values
from gateway.audit import chain as audit
from gateway.store import sqlite
from tests.store.test_contract import ACTOR, T0, accept, new

PAGE = 4096


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[sqlite.SqliteStore]:
    s = sqlite.SqliteStore(tmp_path / "gw.db")
    await s.open()
    await s.migrate()
    yield s
    await s.close()


def checkpointer(store: sqlite.SqliteStore) -> sqlite_wal.Checkpointer:
    assert store._writer.wal is not None
    assert store._writer.wal.checkpointer is not None
    return store._writer.wal.checkpointer


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_commits_never_checkpoint_the_checkpointer_does(
    store: sqlite.SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the checkpointer asleep, thousands of WAL pages of commits leave the database
    file byte for byte as it was (no commit ran a checkpoint); one checkpoint on the
    checkpointer's own connection then copies them."""
    db = Path(store.path)
    ckpt = checkpointer(store)
    monkeypatch.setattr(ckpt, "committed", lambda: None)  # no checkpoint due after commits
    await accept(store, new("FIRST"))
    await anyio.to_thread.run_sync(ckpt.checkpoint)
    before = digest(db)
    for i in range(150):
        await accept(store, new(f"R{i}"))
    wal_pages = os.path.getsize(f"{db}-wal") // PAGE
    assert wal_pages > 1000  # past SQLite's default autocheckpoint
    assert digest(db) == before
    await anyio.to_thread.run_sync(ckpt.checkpoint)
    assert digest(db) != before


async def test_the_wal_stays_bounded_under_a_steady_write_load(
    store: sqlite.SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers that never pause: commits land during every checkpoint, so the WAL would
    never start over; past ``RESET_FRAMES`` a checkpoint holds the writer lock, and the WAL
    file never grows far beyond that."""
    monkeypatch.setattr(sqlite_wal, "RESET_FRAMES", 100)
    monkeypatch.setattr(sqlite_wal, "EVERY_S", 0.0)
    ckpt = checkpointer(store)

    async def writer(w: int) -> None:
        for i in range(100):
            await accept(store, new(f"W{w}-{i}"))

    async with anyio.create_task_group() as tg:
        for w in range(16):
            tg.start_soon(writer, w)
    assert ckpt.resets >= 1
    assert os.path.getsize(f"{store.path}-wal") // PAGE < 6 * 100
    assert audit.verify_rows([r async for r in store.audit_rows()]).ok


async def test_a_lone_operation_runs_without_a_savepoint_and_its_failure_leaves_nothing(
    store: sqlite.SqliteStore,
) -> None:
    """A batch of one is a bare transaction: its failure rolls the transaction back (no
    row of it stays) and the writer goes on; batches of several still use SAVEPOINTs."""
    [taken] = await store.accept([new("T")], actor=ACTOR, now=T0)
    statements: list[str] = []
    conn = store._writer.conn
    assert conn is not None
    await store._writer.call(conn.set_trace_callback, statements.append)
    trail = [r async for r in store.audit_rows()]
    bad = new("B")
    bad = values.NewFiling(
        filing=bad.filing.model_copy(update={"id": taken.filing_id}), adapters=bad.adapters
    )
    with pytest.raises(errors.StoreError):
        await store.accept([bad], actor=ACTOR, now=T0)
    assert [r async for r in store.audit_rows()] == trail  # nothing of it committed
    await accept(store, new("G"))
    await store._writer.call(conn.set_trace_callback, None)
    assert not [s for s in statements if "SAVEPOINT" in s]
    assert [s for s in statements if s in ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")] == [
        "BEGIN IMMEDIATE",
        "ROLLBACK",
        "BEGIN IMMEDIATE",
        "COMMIT",
    ]
    view = await store.get_filing(taken.filing_id)
    assert view is not None
    assert view.reference == "T"  # the taken id still names the first filing
