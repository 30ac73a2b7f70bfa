"""The SQLite store's connections, each on a thread of its own (``Conn``), and the
writer's side across processes: a writer lock that wakes, and WAL checkpoints off the
commit path (``WriteSide``; not for ``:memory:``).

**The writer lock.** Several ``serve`` processes (``[gateway] workers``) write one
database file. SQLite serialises them itself, but a writer that finds the database locked
*sleeps* in its busy handler (1, 2, 5, 10… ms between tries), so a second process waited
longer than the first one's commit took. Each writer therefore takes ``flock`` on a file
beside the database (``<db>-writer.lock``) before ``BEGIN IMMEDIATE`` and lets go after
COMMIT or ROLLBACK (the fsync included: it is part of the commit): a second writer waits
in the kernel and is woken the moment the first lets go, and the kernel lets go for a
process that dies. The wait is bounded (``wait_s``, the busy timeout): past it the writer
goes on under SQLite's busy handler, which stays the fallback against writers that do not
take the lock (an older gateway, a tool) and where the lock file cannot be opened.
Readers never take it.

**Checkpoints.** With ``wal_autocheckpoint`` the commit that takes the WAL past 1,000
pages copies them into the database file and fsyncs it while every caller of its group
waits. The writer turns that off and a ``Checkpointer`` (its own connection and thread)
runs PASSIVE checkpoints, which never wait for readers or writers, after commits, at most
every ``EVERY_S``. Under a steady load a commit lands during nearly every checkpoint, so
the WAL is never wholly copied and never starts again from its beginning; once it holds
``RESET_FRAMES`` the checkpointer copies the rest holding the writer lock (a short pass:
the one before it copied nearly everything), and the next writer starts the WAL over.
SQLite lets one checkpoint run at a time: the others (another process's) return busy
at once, so N processes make no storm, and a pass with nothing to copy costs no fsync.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import structlog

log = structlog.get_logger("gateway.store.sqlite")

T = TypeVar("T")

#: how long a writer waits for the database: SQLite's busy timeout, the writer lock's wait
BUSY_S = 5.0
#: the least time between two checkpoints of one process
EVERY_S = 0.25
#: WAL frames (pages) past which a checkpoint takes the writer lock to let the WAL restart
RESET_FRAMES = 4000


class WriterLock:
    """``flock`` on ``path``, held by one writer (one open file) at a time, across
    threads and processes; ``acquire`` waits at most ``wait_s``.

    A blocking ``flock`` cannot time out, so when the lock is taken the wait runs on a
    daemon thread of its own; the writer waits for it up to ``wait_s``. When the writer
    gave up and the lock comes later, a later ``acquire`` takes it, or the waiting thread
    lets it go at once.
    """

    def __init__(self, path: str, *, wait_s: float) -> None:
        self.path = path
        self.wait_s = wait_s
        self.held = False
        self._fd: int | None = None
        self._mutex = threading.Lock()
        self._granted = threading.Event()
        self._waiting = False  # a thread is in flock for this lock
        self._wanted = False  # and a writer waits for it

    @property
    def waiting(self) -> bool:
        """Whether a thread waits in ``flock`` for this lock (another writer holds it)."""
        return self._waiting

    def open(self) -> None:
        """Open (or make) the lock file; until then ``acquire`` has nothing to take."""
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def acquire(self) -> bool:
        """Take the lock; False when it cannot be had (no lock file, or not in time)."""
        with self._mutex:
            if self._fd is None:
                return False
            if not self._waiting:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    self._waiting = True
                    self._granted.clear()
                    fd = self._fd
                    threading.Thread(target=self._wait, args=(fd,), daemon=True).start()
                else:
                    self.held = True
                    return True
            self._wanted = True
        self._granted.wait(self.wait_s)
        with self._mutex:
            self._wanted = False
            self.held = self._granted.is_set()
            self._granted.clear()
            return self.held

    def _wait(self, fd: int) -> None:
        got = False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # in the kernel until the holder lets go
            got = True
        finally:
            with self._mutex:
                self._waiting = False
                if self._fd != fd:  # closed meanwhile: the file was left to this thread
                    os.close(fd)
                elif got and self._wanted:
                    self._granted.set()
                elif got:  # its writer went on without it
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def release(self) -> None:
        with self._mutex:
            if self.held and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            self.held = False

    def close(self) -> None:
        with self._mutex:
            fd, self._fd = self._fd, None
            if fd is not None and not self._waiting:
                os.close(fd)  # (a waiting thread closes it when its flock returns)
            self.held = False


class Checkpointer:
    """PASSIVE checkpoints of one database on a connection and a thread of their own."""

    def __init__(self, path: str, *, synchronous: str, wait_s: float) -> None:
        self.path = path
        self.synchronous = synchronous
        #: its own open of the writer lock: it excludes this process's writer too
        self.lock = WriterLock(path + "-writer.lock", wait_s=wait_s)
        #: checkpoints run, and those that held the writer lock to let the WAL restart
        self.passes = 0
        self.resets = 0
        self._due = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None

    def start(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")  # how the copy is synced
        self._conn = conn
        # a daemon: a store never closed must not keep the process from exiting (a
        # checkpoint cut short is as safe as one a crash cuts short)
        self._thread = threading.Thread(
            target=self._run, name="edigw-sqlite-checkpoint", daemon=True
        )
        self._thread.start()

    def committed(self) -> None:
        """A commit happened: checkpoint soon (at most every ``EVERY_S``)."""
        self._due.set()

    def stop(self) -> None:
        self._stop.set()
        self._due.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.lock.close()

    def _run(self) -> None:
        while True:
            self._due.wait()
            if self._stop.is_set():
                return
            self._due.clear()
            try:
                self.checkpoint()
            except sqlite3.Error as exc:  # the next commit tries again
                log.warning("store.checkpoint_failed", error=str(exc))
            self._stop.wait(EVERY_S)

    def checkpoint(self) -> None:
        """One PASSIVE checkpoint; past ``RESET_FRAMES`` another, holding the writer lock."""
        assert self._conn is not None, "checkpointer is not started"
        busy, frames, _ = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.passes += 1
        if busy or frames < RESET_FRAMES or not self.lock.acquire():
            return
        try:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.resets += 1
        finally:
            self.lock.release()


class WriteSide:
    """What the writer connection of a database file adds to its transactions: the
    writer lock around each (``begin``/``end``) and the checkpoints after."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = WriterLock(f"{path}-writer.lock", wait_s=BUSY_S)
        self.checkpointer: Checkpointer | None = None

    def open(self, conn: sqlite3.Connection, synchronous: str) -> None:
        """``conn`` is the writer's, in WAL mode: its commits stop checkpointing."""
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        self.checkpointer = Checkpointer(self.path, synchronous=synchronous, wait_s=BUSY_S)
        for lock in (self.lock, self.checkpointer.lock):
            try:
                lock.open()
            except OSError as exc:  # said once; SQLite's busy handler serialises the writers
                log.warning("store.writer_lock_unavailable", path=lock.path, error=str(exc))
                break
        self.checkpointer.start()

    def begin(self) -> None:
        """Before ``BEGIN IMMEDIATE``: wait for the other writers (in the kernel)."""
        self.lock.acquire()

    def end(self) -> None:
        """After COMMIT or ROLLBACK: let the next writer in; a checkpoint is due."""
        self.lock.release()
        if self.checkpointer is not None:
            self.checkpointer.committed()

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
            self.checkpointer = None
        self.lock.close()


class Conn:
    """A sqlite3 connection owned by one thread; calls are queued to that thread. The
    writer's (on a file) comes with its ``WriteSide`` (``wal``)."""

    def __init__(self, path: str, *, readonly: bool, synchronous: str = "FULL") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edigw-sqlite")
        self._path = path
        self._readonly = readonly
        self._synchronous = synchronous
        self.conn: sqlite3.Connection | None = None
        self.wal = None if readonly or path == ":memory:" else WriteSide(path)

    def _connect(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_S * 1000:.0f}")
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
