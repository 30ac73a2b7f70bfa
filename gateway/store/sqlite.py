"""The embedded store: one SQLite file in WAL mode with ``synchronous=FULL`` (default;
``sqlite:///path?synchronous=normal`` trades the last commits on power loss for speed).

All writes go through one connection on one thread (``sqlite_wal.Conn``): operations
queued meanwhile share one ``BEGIN IMMEDIATE`` transaction, each in its own SAVEPOINT,
so writes are serialized, an operation's audit rows commit with the change they record,
and concurrent requests share one fsync. Reads use a second connection, which WAL lets
run beside the writer. Writers of several processes queue for a lock file and WAL
checkpoints run beside the commits, not in them (``gateway.sqlite_wal``); a database that
stays busy is retried briefly with tenacity before the caller sees ``StoreError``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import tenacity

from gateway import errors, sqlite_wal
from gateway.audit import redact
from gateway.store import base, sansio, sqlite_conn

T = TypeVar("T")


class SqliteStore(base.Store):
    """``Store`` on one SQLite file."""

    def __init__(
        self,
        path: str | Path,
        *,
        redactor: redact.Redactor | None = None,
        synchronous: str = "full",
    ) -> None:
        super().__init__(group_max=sqlite_conn.GROUP_MAX)
        self.path = str(path)
        self.redactor = redactor or redact.Redactor()
        synchronous = synchronous.upper()
        if synchronous not in sqlite_conn.SYNCHRONOUS:
            known = ", ".join(s.lower() for s in sqlite_conn.SYNCHRONOUS)
            raise ValueError(f"synchronous must be one of {known}")
        self.cx = sansio.Cx("sqlite", self.redactor)
        self._writer = sqlite_wal.Conn(self.path, readonly=False, synchronous=synchronous)
        self._reader = sqlite_wal.Conn(self.path, readonly=True, synchronous=synchronous)
        self._opened = False
        self._lock = threading.Lock()
        self._queue: list[sqlite_conn.Op] = []
        self._flushing = False

    # --- lifecycle --------------------------------------------------------------------

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            await self._writer.start()
            await self._reader.start()
        except sqlite3.Error as exc:
            raise errors.StoreError(f"cannot open SQLite store {self.path}: {exc}") from exc
        self._opened = True

    async def close(self) -> None:
        if not self._opened:
            return
        await self._accepts.wait_idle()
        await self._completes.wait_idle()
        self._opened = False
        await self._reader.stop()
        await self._writer.stop()

    async def ping(self) -> None:
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    # --- plumbing ---------------------------------------------------------------------

    def _submit(self, fn: Callable[..., T], args: tuple[Any, ...]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        with self._lock:
            self._queue.append((fn, args, fut, loop))
            start = not self._flushing
            self._flushing = True
        if start:
            self._writer.submit(self._flush)
        return fut

    def _flush(self) -> None:
        """On the writer thread: commit queued operations, up to GROUP_MAX per transaction."""
        most = sqlite_conn.GROUP_MAX
        while True:
            with self._lock:
                batch, self._queue = self._queue[:most], self._queue[most:]
                if not batch:
                    self._flushing = False
                    return
            sqlite_conn.run_group(self._writer.conn, batch, self._writer.wal)

    async def _tx(self, fn: Callable[..., sansio.Body[T]], *args: Any) -> T:
        """Run a transaction body (``sansio``) in a write transaction; returns after its
        COMMIT, which it may share with the operations queued beside it (``run_group``)."""
        return await self._guard(lambda: self._submit(self._run_body, (fn, args)))

    async def _rx(self, fn: Callable[..., sansio.Body[T]], *args: Any) -> T:
        """Run a transaction body on the reader connection."""
        return await self._read(self._run_body, fn, args)

    async def _rx_snapshot(self, fn: Callable[..., sansio.Body[T]], *args: Any) -> T:
        """Run a body on the reader inside one read transaction: one snapshot (WAL)."""
        return await self._read(self._run_snapshot, fn, args)

    def _run_body(
        self, conn: sqlite3.Connection, fn: Callable[..., sansio.Body[T]], args: tuple[Any, ...]
    ) -> T:
        return sansio.run_sync(conn, fn(self.cx, *args))

    def _run_snapshot(
        self, conn: sqlite3.Connection, fn: Callable[..., sansio.Body[T]], args: tuple[Any, ...]
    ) -> T:
        conn.execute("BEGIN")
        try:
            return self._run_body(conn, fn, args)
        finally:
            conn.execute("ROLLBACK")  # it only read

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        def _run() -> T:
            conn = self._reader.conn
            assert conn is not None, "store is not open"
            return fn(conn, *args)

        return await self._guard(lambda: self._reader.call(_run))

    async def _guard(self, run: Callable[[], Awaitable[T]]) -> T:
        if not self._opened:
            raise errors.StoreError("store is closed")
        try:
            try:  # the common case: no retry machinery at all
                return await run()
            except sqlite3.OperationalError as exc:
                if not sqlite_conn.retryable(exc):
                    raise
            async for attempt in tenacity.AsyncRetrying(
                retry=tenacity.retry_if_exception(sqlite_conn.retryable),
                wait=tenacity.wait_exponential_jitter(multiplier=0.02, max=0.5, jitter=0.02),
                stop=tenacity.stop_after_delay(10),
                reraise=True,
            ):
                with attempt:
                    return await run()
        except sqlite3.IntegrityError as exc:
            raise errors.StoreError(f"store integrity error: {exc}") from exc
        except sqlite3.Error as exc:
            raise errors.StoreError(f"store error: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # --- accept, complete (the rest of dispatch: ``dispatch.DispatchStore``) --------------
