"""The embedded store: one SQLite file in WAL mode with ``synchronous=FULL`` (default;
``sqlite:///path?synchronous=normal`` trades the last commits on power loss for speed).

All writes go through one connection on one thread (``sqlite_conn``): operations
queued meanwhile share one ``BEGIN IMMEDIATE`` transaction, each in its own SAVEPOINT,
so writes are serialized, an operation's audit rows commit with the change they record,
and concurrent requests share one fsync. Reads use a second connection, which WAL lets
run beside the writer. A database that is busy (another process holds the
write lock) is retried briefly with tenacity before the caller sees ``StoreError``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import tenacity

from gateway import errors, models
from gateway.audit import redact
from gateway.rules import outages
from gateway.store import (
    base,
    coalesce,
    dispatch,
    inbound,
    rows,
    sansio,
    sqlite_acks,
    sqlite_actions,
    sqlite_callback_retry,
    sqlite_callbacks,
    sqlite_conn,
    sqlite_outages,
    sqlite_reads,
    sqlite_schema,
    sqlite_x12gaps,
    trail,
    x12gaps,
)
from gateway.store import callback_retry as cbr
from gateway.store.accept import AcceptCall, accept_many
from gateway.store.base import Actor, Claim

T = TypeVar("T")

#: the schema's migrations; ``migrate`` reads them from here (a test shortens the list)
MIGRATIONS = sqlite_schema.MIGRATIONS

SYNCHRONOUS = sqlite_conn.SYNCHRONOUS
GROUP_MAX = sqlite_conn.GROUP_MAX


class SqliteStore(dispatch.DispatchStore, trail.AuditStore, inbound.InboundStore):
    """``Store`` on one SQLite file."""

    def __init__(
        self,
        path: str | Path,
        *,
        redactor: redact.Redactor | None = None,
        synchronous: str = "full",
    ) -> None:
        self.path = str(path)
        self.redactor = redactor or redact.Redactor()
        if synchronous.upper() not in SYNCHRONOUS:
            raise ValueError(
                f"synchronous must be one of {', '.join(s.lower() for s in SYNCHRONOUS)}"
            )
        self.synchronous = synchronous.upper()
        self.cx = sansio.Cx("sqlite", self.redactor)
        self._writer = sqlite_conn.Conn(
            self.path, readonly=False, redactor=self.redactor, synchronous=self.synchronous
        )
        self._reader = sqlite_conn.Conn(
            self.path, readonly=True, redactor=self.redactor, synchronous=self.synchronous
        )
        self._opened = False
        self._lock = threading.Lock()
        self._queue: list[sqlite_conn.Op] = []
        self._flushing = False
        #: concurrent completions share one writer operation (see ``coalesce``)
        self._completes: coalesce.Coalescer[dispatch.Completion, bool]
        self._completes = coalesce.Coalescer(self._complete_batch, max_batch=GROUP_MAX)

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
        await self._completes.wait_idle()
        self._opened = False
        await self._reader.stop()
        await self._writer.stop()

    async def ping(self) -> None:
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    async def schema_version(self) -> int:
        return await self._read(sqlite_schema.schema_version)

    async def migrate(self) -> int:
        return await self._write(sqlite_schema.migrate, MIGRATIONS)

    # --- plumbing ---------------------------------------------------------------------

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` in a write transaction; returns after its COMMIT.

        Group commit: operations queued while the writer thread is busy run together
        in one transaction, each inside its own SAVEPOINT (an operation that raises
        is rolled back alone), and every caller resumes only after the shared COMMIT.
        Concurrent requests so share one fsync instead of paying one each.
        """
        return await self._guard(lambda: self._submit(fn, args))

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
        while True:
            with self._lock:
                batch, self._queue = self._queue[:GROUP_MAX], self._queue[GROUP_MAX:]
                if not batch:
                    self._flushing = False
                    return
            sqlite_conn.run_group(self._writer.conn, batch)

    async def _tx(self, fn: Callable[..., sansio.Body[T]], *args: Any) -> T:
        """Run a transaction body (``sansio``) in a write transaction."""
        return await self._write(self._run_body, fn, args)

    async def _rx(self, fn: Callable[..., sansio.Body[T]], *args: Any) -> T:
        """Run a transaction body on the reader connection."""
        return await self._read(self._run_body, fn, args)

    def _run_body(
        self, conn: sqlite3.Connection, fn: Callable[..., sansio.Body[T]], args: tuple[Any, ...]
    ) -> T:
        return sansio.run_sync(conn, fn(self.cx, *args))

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

    async def accept(
        self, items: Sequence[base.NewFiling], *, actor: Actor, now: datetime
    ) -> list[base.AcceptResult]:
        [results] = await self._tx(accept_many, [AcceptCall(list(items), actor, now)])
        return results

    async def complete(
        self,
        claim: Claim,
        *,
        now: datetime,
        receipt: dict[str, Any],
        ack_due_at: datetime | None = None,
        hold_until_ack: bool = False,
    ) -> bool:
        return await self._completes.submit(
            dispatch.Completion(claim, now, receipt, ack_due_at, hold_until_ack)
        )

    async def _complete_batch(self, batch: list[dispatch.Completion]) -> list[coalesce.Outcome]:
        return [(True, done) for done in await self._tx(dispatch.complete_many, batch)]

    # --- reads ------------------------------------------------------------------------

    async def get_filing(self, filing_id: str) -> models.FilingView | None:
        return await self._read(sqlite_reads.get_filing, filing_id)

    async def list_filings(
        self, flt: base.ListFilter, *, limit: int, cursor: str | None
    ) -> models.Page:
        return await self._read(sqlite_reads.list_filings, flt, limit, cursor)

    async def counts(self) -> dict[str, dict[str, int]]:
        return await self._read(sqlite_reads.counts)

    # --- monitoring (issue 7) ------------------------------------------------------------

    async def queue_stats(self) -> base.QueueStats:
        return await self._read(sqlite_reads.queue_stats)

    async def bulk_action(
        self,
        action: str,
        flt: base.BulkFilter,
        *,
        actor: Actor,
        now: datetime,
        reason: str,
        limit: int,
        dry_run: bool = False,
    ) -> base.BulkResult:
        if dry_run:
            return await self._read(sqlite_actions.bulk_select, action, flt, limit, True)
        return await self._write(sqlite_actions.bulk_action, action, flt, actor, now, reason, limit)

    # --- operator actions -------------------------------------------------------------

    async def retry_filing(self, filing_id: str, *, actor: Actor, now: datetime) -> base.Action:
        return await self._write(sqlite_actions.retry_filing, filing_id, actor, now)

    async def cancel_filing(self, filing_id: str, *, actor: Actor, now: datetime) -> base.Action:
        return await self._write(sqlite_actions.cancel_filing, filing_id, actor, now)

    # --- outages (issue 3) -------------------------------------------------------------

    async def add_outage(
        self, request: outages.OutageRequest, *, actor: Actor, now: datetime
    ) -> outages.Outage:
        return await self._write(sqlite_outages.add_outage, request, actor, now)

    async def list_outages(
        self, *, now: datetime, include_past: bool = False
    ) -> list[outages.Outage]:
        return await self._read(sqlite_outages.list_outages, now, include_past)

    async def remove_outage(self, outage_id: str, *, actor: Actor, now: datetime) -> outages.Outage:
        return await self._write(sqlite_outages.remove_outage, outage_id, actor, now)

    async def defer_held(
        self,
        *,
        adapter: str,
        until: datetime,
        reason: str,
        now: datetime,
        environment: str | None = None,
    ) -> int:
        return await self._write(
            sqlite_outages.defer_held, adapter, environment, until, reason, now
        )

    async def flag_at_risk(
        self,
        *,
        now: datetime,
        due_before: datetime,
        windows: Sequence[base.RiskWindow] = (),
    ) -> list[tuple[str, datetime]]:
        return await self._write(sqlite_outages.flag_at_risk, now, due_before, list(windows))

    # --- acks, X12 control numbers, callbacks (bodies in sqlite_acks, sqlite_callbacks) -

    async def record_ack(
        self, ack: models.Ack, *, decide: base.AckDecide, actor: Actor, now: datetime
    ) -> models.AckRecord:
        return await self._write(sqlite_acks.record_ack, ack, decide, actor, now)

    async def list_acks(
        self, *, matched: bool | None, filing_id: str | None, limit: int
    ) -> list[models.AckRecord]:
        return await self._read(sqlite_acks.list_acks, matched, filing_id, limit)

    async def flag_overdue(self, *, now: datetime) -> list[tuple[str, str, str]]:
        return await self._write(sqlite_acks.flag_overdue, now)

    async def extend_ack_deadlines(self, adapter: str, *, by_s: float, now: datetime) -> int:
        return await self._write(sqlite_acks.extend_ack_deadlines, adapter, by_s, now)

    async def resend_filing(
        self, filing_id: str, *, actor: Actor, now: datetime, reason: str
    ) -> base.Action:
        return await self._write(sqlite_acks.resend_filing, filing_id, actor, now, reason)

    async def close_ack(
        self, filing_id: str, *, actor: Actor, now: datetime, reason: str
    ) -> base.Action:
        return await self._write(sqlite_acks.close_ack, filing_id, actor, now, reason)

    async def allocate_controls(
        self,
        *,
        sender: str,
        receiver: str,
        usage: str,
        delivery_id: str,
        filing_id: str,
        attempt: int,
        now: datetime,
        token: int | None = None,
    ) -> base.Controls | None:
        return await self._write(
            sqlite_acks.allocate_controls,
            sender,
            receiver,
            usage,
            delivery_id,
            filing_id,
            attempt,
            now,
            token,
        )

    async def claim_callbacks(
        self, *, owner: str, now: datetime, lease_s: float, limit: int
    ) -> list[base.CallbackClaim]:
        return await self._write(sqlite_callbacks.claim_callbacks, owner, now, lease_s, limit)

    async def finish_callback(
        self,
        claim: base.CallbackClaim,
        *,
        now: datetime,
        state: str,
        at: datetime | None = None,
        error: str | None = None,
    ) -> bool:
        return await self._write(sqlite_callbacks.finish_callback, claim, now, state, at, error)

    async def release_callbacks(self, *, owner: str, now: datetime) -> int:
        return await self._write(sqlite_callbacks.release_callbacks, owner, now)

    async def next_callback_due(self) -> datetime | None:
        value = await self._read(sqlite_callbacks.next_callback_due)
        return None if value is None else rows.dt(value)

    async def list_callbacks(
        self, *, filing_id: str | None, state: str | None, limit: int
    ) -> list[models.CallbackView]:
        return await self._read(sqlite_callbacks.list_callbacks, filing_id, state, limit)

    async def retry_callbacks(
        self, sel: cbr.CallbackSelection, *, actor: Actor, now: datetime, reason: str
    ) -> cbr.CallbackRetry:
        return await self._write(sqlite_callback_retry.retry_callbacks, sel, actor, now, reason)

    async def x12_gaps(self, q: x12gaps.GapQuery) -> x12gaps.X12GapReport:
        return await self._read(sqlite_x12gaps.x12_gaps, q)
