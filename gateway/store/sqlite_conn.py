"""The SQLite store's connections, each on a thread of its own, and the writer's group
commit (``run_group``), below ``sqlite.SqliteStore`` (whose docstring says why)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from gateway import sqlite_wal
from gateway.store import coalesce

T = TypeVar("T")


#: ``?synchronous=`` values of a store URL; FULL (the default) fsyncs the WAL on every commit
SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA")


def retryable(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


#: most write operations one group-commit transaction holds
GROUP_MAX = 512

#: a queued write: the function, its arguments, and the future its caller awaits
Op = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


def _settle_all(settled: list[tuple[asyncio.Future[Any], coalesce.Outcome]]) -> None:
    for fut, outcome in settled:
        coalesce.settle(fut, outcome)


def run_group(
    conn: sqlite3.Connection | None, batch: list[Op], wal: sqlite_wal.WriteSide | None = None
) -> None:
    """One transaction for a batch of operations, each in its own SAVEPOINT (but a lone
    one, whose failure is the transaction's), holding the writer lock of ``wal``.

    Nobody hears of an outcome before COMMIT; when BEGIN or COMMIT fails every
    operation of the batch gets that error (the callers retry what is retryable).
    """
    outcomes: list[coalesce.Outcome] = []
    try:
        assert conn is not None, "store is not open"
        if wal is not None:
            wal.begin()
        try:
            conn.execute("BEGIN IMMEDIATE")
            if len(batch) == 1:  # no SAVEPOINT (two statements fewer); its failure: below
                fn, args, _, _ = batch[0]
                outcomes.append((True, fn(conn, *args)))
            else:
                for fn, args, _, _ in batch:
                    conn.execute("SAVEPOINT op")
                    try:
                        value = fn(conn, *args)
                    except Exception as exc:  # this operation's failure: undo it alone
                        conn.execute("ROLLBACK TO op")
                        conn.execute("RELEASE op")
                        outcomes.append((False, exc))
                    else:
                        conn.execute("RELEASE op")
                        outcomes.append((True, value))
            conn.execute("COMMIT")
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            if wal is not None:
                wal.end()
    except Exception as exc:  # BEGIN, COMMIT, ROLLBACK TO or a lone operation failed
        outcomes = [(False, exc)] * len(batch)
    # one wake-up per event loop for the whole batch, not one per operation (each
    # call_soon_threadsafe writes to the loop's self-pipe)
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], coalesce.Outcome]]]
    by_loop = {}
    for (_, _, fut, loop), outcome in zip(batch, outcomes, strict=True):
        by_loop.setdefault(loop, []).append((fut, outcome))
    for loop, settled in by_loop.items():
        loop.call_soon_threadsafe(_settle_all, settled)


class Conn:
    """A sqlite3 connection owned by one thread; calls are queued to that thread. The
    writer's (on a file) comes with its lock and checkpoints (``wal``)."""

    def __init__(self, path: str, *, readonly: bool, synchronous: str = "FULL") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edigw-sqlite")
        self._path = path
        self._readonly = readonly
        self._synchronous = synchronous
        self.conn: sqlite3.Connection | None = None
        self.wal = None if readonly or path == ":memory:" else sqlite_wal.WriteSide(path)

    def _connect(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {sqlite_wal.BUSY_S * 1000:.0f}")
        if not self._readonly:
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        self.conn = conn
        if self.wal is not None:
            self.wal.open(conn, self._synchronous)

    async def start(self) -> None:
        await self.call(self._connect)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def submit(self, fn: Callable[[], None]) -> None:
        """Queue ``fn`` on this connection's thread without waiting for it."""
        self._executor.submit(fn)

    async def stop(self) -> None:
        def _close() -> None:
            if self.wal is not None:  # first: the writer's close is the last one (it
                self.wal.close()  # checkpoints and removes the WAL)
            if self.conn is not None:
                self.conn.close()
                self.conn = None

        try:
            await self.call(_close)
        finally:
            self._executor.shutdown(wait=True)
