"""The SQLite writers' lock file across processes (``gateway.sqlite_wal.WriterLock``): a
writer waits for another in the kernel, not in SQLite's busy handler, and goes on when the
other lets go or dies; every write of two writers at once commits once."""

from __future__ import annotations

import fcntl
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
import structlog

from gateway import sqlite_wal
from gateway.audit import chain as audit
from gateway.store import sqlite
from tests.store.test_contract import T0, accept, new

ROOT = Path(__file__).resolve().parents[2]

#: a second process writing the same database through its own store
WRITER = """
import asyncio, sys
from gateway.store.open import open_store
from tests.store.test_contract import accept, new

async def main(url, tag, n):
    store = open_store(url)
    await store.open()
    try:
        for i in range(n):
            await accept(store, new(f"{tag}-{i}"))
    finally:
        await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""

#: a process that holds the writer lock and a write transaction, then waits to be killed
HOLDER = """
import fcntl, os, sqlite3, sys
fd = os.open(sys.argv[1] + "-writer.lock", os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE filings SET reference = 'HELD'")
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    """A migrated database file (its store closed again)."""
    path = tmp_path / "gw.db"
    store = sqlite.SqliteStore(path)
    await store.open()
    await store.migrate()
    await store.close()
    return path


@pytest.fixture
async def store(db: Path) -> AsyncIterator[sqlite.SqliteStore]:
    s = sqlite.SqliteStore(db)
    await s.open()
    yield s
    await s.close()


def references(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT reference FROM filings ORDER BY reference")]


@pytest.fixture
def held_lock(db: Path) -> Iterator[int]:
    """The writer lock, held by this test through a file of its own (another writer)."""
    fd = os.open(f"{db}-writer.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield fd
    os.close(fd)


async def parked(lock: sqlite_wal.WriterLock | None) -> None:
    """Until the store's writer waits in ``flock`` for the lock (an event, not a time)."""
    assert lock is not None
    with anyio.fail_after(10):
        while not lock.waiting:
            await anyio.sleep(0.01)


async def test_a_writer_waits_in_flock_and_goes_on_when_the_holder_lets_go(
    db: Path, store: sqlite.SqliteStore, held_lock: int
) -> None:
    """Another writer holds the lock and SQLite's write lock: the store's writer waits in the
    kernel for the lock file (never reaching SQLite's busy handler), and its commit follows
    the holder's release."""
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE schema_version SET version = version")
    done = anyio.Event()

    async def write() -> None:
        await accept(store, new("AFTER"))
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(write)
        assert store._writer.wal is not None
        await parked(store._writer.wal.lock)
        assert not done.is_set()
        other.execute("COMMIT")  # the holder commits, then lets go of the lock
        fcntl.flock(held_lock, fcntl.LOCK_UN)
        with anyio.fail_after(10):
            await done.wait()
    other.close()
    assert references(db) == ["AFTER"]


async def test_a_holder_killed_with_sigkill_lets_the_writer_go_on(
    db: Path, store: sqlite.SqliteStore
) -> None:
    """A process that holds the lock in the middle of a write transaction is killed: the
    kernel lets go of its lock, its transaction is gone, and the store's write commits."""
    await accept(store, new("BEFORE"))
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline() == b"held\n"
            async with anyio.create_task_group() as tg:
                tg.start_soon(accept, store, new("AFTER"))
                assert store._writer.wal is not None
                await parked(store._writer.wal.lock)
                holder.send_signal(signal.SIGKILL)
        finally:
            holder.kill()
    assert references(db) == ["AFTER", "BEFORE"]  # the holder's UPDATE never committed


async def test_two_stores_and_a_second_process_writing_at_once_commit_each_write_once(
    db: Path, store: sqlite.SqliteStore
) -> None:
    """Two stores in this process and a third in another write at once: all make
    progress, every write commits once, and the audit trail is one verified chain."""
    second = sqlite.SqliteStore(db)
    await second.open()
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, f"sqlite:///{db}", "P", "40"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:

        async def write(s: sqlite.SqliteStore, tag: str) -> None:
            for i in range(40):
                await accept(s, new(f"{tag}-{i}"))

        async with anyio.create_task_group() as tg:
            for s, tag in ((store, "A"), (second, "B")):
                tg.start_soon(write, s, tag)
        assert await anyio.to_thread.run_sync(child.wait, 60) == 0
    finally:
        child.kill()
        await second.close()
    expected = sorted(f"{tag}-{i}" for tag in "ABP" for i in range(40))
    assert references(db) == expected
    trail = [r async for r in store.audit_rows()]
    assert audit.verify_rows(trail).ok


async def test_a_lock_file_that_cannot_be_opened_falls_back_to_the_busy_handler(
    db: Path,
) -> None:
    """Where the lock file cannot be opened (here a directory is in its place) the store
    says so in one log line and writes all the same, serialised by SQLite alone."""
    lock = Path(f"{db}-writer.lock")
    lock.unlink()  # (left by the migration's store)
    lock.mkdir()
    with structlog.testing.capture_logs() as logs:
        s = sqlite.SqliteStore(db)
        await s.open()
        try:
            for i in range(3):
                await accept(s, new(f"R{i}"), now=T0)
        finally:
            await s.close()
    said = [e for e in logs if e["event"] == "store.writer_lock_unavailable"]
    assert len(said) == 1
    assert references(db) == ["R0", "R1", "R2"]


async def test_a_writer_that_waited_too_long_goes_on_and_leaves_the_lock_free(
    tmp_path: Path,
) -> None:
    """Past ``wait_s`` a writer goes on without the lock (SQLite's busy handler then
    serialises it); the thread still waiting takes the lock when the holder lets go and,
    no writer wanting it any more, lets go at once: nobody is left locked out."""
    path = str(tmp_path / "db-writer.lock")
    holder = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    lock = sqlite_wal.WriterLock(path, wait_s=0.05)
    lock.open()
    try:
        assert lock.acquire() is False
        assert not lock.held
        assert lock.waiting
        fcntl.flock(holder, fcntl.LOCK_UN)
        with anyio.fail_after(10):
            while lock.waiting:
                await anyio.sleep(0.01)
        third = os.open(path, os.O_RDWR)
        fcntl.flock(third, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: raises if it were left held
        os.close(third)
        assert lock.acquire() is True
        lock.release()
    finally:
        lock.close()
        os.close(holder)
