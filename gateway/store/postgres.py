"""The shared store: PostgreSQL through an asyncpg connection pool.

Several gateway processes run against one database. Each store operation is one
transaction (READ COMMITTED); how they stay correct together:

* **claims** lock only the head of each (adapter, ordering_key) group,
  ``FOR UPDATE SKIP LOCKED``, in batches (see ``sql/postgres/dispatch.sql`` for why a successor
  can never be taken while its head is pending or in flight, in any process);
* **accept** takes a transaction advisory lock per ordering key before inserting, so
  a key's deliveries are numbered in commit order, and inserts with
  ``ON CONFLICT (idempotency_key) DO NOTHING`` then reads back, so concurrent
  duplicates become one filing;
* **group commit**: concurrent ``accept`` calls share one transaction, and so do
  concurrent ``complete`` calls (``coalesce``), with set-based statements; every caller
  resumes only after that COMMIT. When a shared accept fails for a reason that may be
  one call's own, each call runs again alone, so one bad call never fails the others;
* **audit** appends take one advisory lock in the same transaction (``trail.Trail``),
  so all processes extend one hash chain; triggers refuse UPDATE and TRUNCATE, and
  DELETE except inside ``prune_audit``'s own transaction;
* **outages** and deadline flags lock what they change (see ``store/outages.py``).

asyncpg and OS errors are translated here, at the edge, into ``errors.StoreError``.
A transaction that failed before COMMIT (a connection lost, a deadlock victim) is
retried with backoff on a fresh pooled connection; a failure *during* COMMIT is
reported, not retried, because its outcome is unknown (the dispatcher then lets the
lease run out, which is the at-least-once path). New work is announced with NOTIFY;
``listen`` keeps a dedicated LISTEN connection, reconnecting with backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import asyncpg
import structlog
import tenacity

from gateway import errors, models
from gateway.audit import redact
from gateway.store import base, coalesce, reads, sansio

T = TypeVar("T")
log = structlog.get_logger("gateway.store.postgres")

#: errors after which the transaction certainly did not commit and may run again
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # a protocol left mid-operation by a lost socket
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, terminate_backend
    asyncpg.exceptions.CannotConnectNowError,
)
_CONFLICT_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)
_DB_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresError,
    *_CONNECTION_ERRORS,
)
_OPEN_ERRORS: tuple[type[BaseException], ...] = (*_DB_ERRORS, ValueError)
_CLOSE_ERRORS: tuple[type[BaseException], ...] = (*_DB_ERRORS, TimeoutError)


#: most calls one group-commit transaction holds
GROUP_MAX = 256


class _CommitUnknown(Exception):
    """The connection failed during COMMIT: the transaction may or may not have committed."""


def _whole_batch_failed(exc: BaseException) -> bool:
    """A failure of the connection or the commit, not of any one call's statements."""
    cause = exc.__cause__ if isinstance(exc, errors.StoreError) else exc
    return isinstance(cause, (_CommitUnknown, *_CONNECTION_ERRORS))


class _PooledConnection(asyncpg.Connection):
    """A pooled connection released without asyncpg's reset query (one round trip per
    release: advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL). Pooled connections hold
    none of those: locks are transaction-scoped, LISTEN has its own connection, no
    session setting is changed, and an open transaction is still rolled back."""

    def get_reset_query(self) -> str:
        return ""


class PostgresStore(base.Store):
    """``Store`` on a PostgreSQL database shared by any number of gateway processes.

    The transaction bodies are written once for both backends (``sansio``); what is
    PostgreSQL's own is here: the pool, retries, NOTIFY/LISTEN and coalescing.
    """

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        retry_s: float = 15.0,
        command_timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        server_settings: dict[str, str] | None = None,
        redactor: redact.Redactor | None = None,
    ) -> None:
        super().__init__(group_max=GROUP_MAX)
        self.dsn = dsn
        #: masks audit details before they are hashed (``[audit] redact_paths``)
        self.redactor = redactor or redact.Redactor()
        self.cx = sansio.Cx("postgres", self.redactor)
        self._pool_args: dict[str, Any] = {
            "min_size": min_size,
            "max_size": max_size,
            "command_timeout": command_timeout_s,
            "timeout": connect_timeout_s,  # connection establishment
            "server_settings": server_settings,
            "connection_class": _PooledConnection,
        }
        self.retry_s = retry_s
        self._pool: asyncpg.Pool | None = None
        self._gets: coalesce.Coalescer[str, models.FilingView | None]
        self._gets = coalesce.Coalescer(self._get_batch, max_batch=GROUP_MAX)

    # --- lifecycle --------------------------------------------------------------------

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(self.dsn, **self._pool_args)
        except _OPEN_ERRORS as exc:
            raise errors.StoreError(f"cannot open PostgreSQL store: {exc}") from exc

    async def close(self) -> None:
        coalesced: dict[str, coalesce.Coalescer[Any, Any]]
        coalesced = {"accept": self._accepts, "complete": self._completes, "get": self._gets}
        for c in coalesced.values():
            await c.wait_idle()
        per_tx = {
            f"{n}_calls_per_tx": round(c.calls / c.batches, 1)
            for n, c in coalesced.items()
            if c.batches
        }
        log.debug(
            "store.coalesced", **per_tx, claims=self.claim_stats[0], claimed=self.claim_stats[1]
        )
        pool, self._pool = self._pool, None
        if pool is not None:
            with anyio.CancelScope(shield=True):
                try:
                    await asyncio.wait_for(pool.close(), 10)
                except _CLOSE_ERRORS:
                    pool.terminate()

    async def ping(self) -> None:
        """One quick round trip, not retried: readiness must answer fast when it fails."""
        await self._run(lambda c: c.fetchval("SELECT 1", timeout=5), write=False, retry=False)

    # --- plumbing ---------------------------------------------------------------------

    async def _run(
        self, fn: Callable[[Any], Awaitable[T]], *, write: bool, retry: bool = True
    ) -> T:
        pool = self._pool
        if pool is None:
            raise errors.StoreError("store is closed")

        async def once() -> T:
            async with pool.acquire() as conn:
                if not write:
                    return await fn(conn)
                return await _in_transaction(conn, fn)

        try:
            try:  # the common case, without the retry machinery
                return await once()
            except _CONNECTION_ERRORS + _CONFLICT_ERRORS:
                if not retry:
                    raise
            async for attempt in tenacity.AsyncRetrying(
                retry=tenacity.retry_if_exception_type(_CONNECTION_ERRORS + _CONFLICT_ERRORS),
                wait=tenacity.wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.1),
                stop=tenacity.stop_after_delay(self.retry_s),
                reraise=True,
            ):
                with attempt:
                    return await once()
        except _CommitUnknown as exc:
            raise errors.StoreError(f"PostgreSQL connection lost during commit: {exc}") from exc
        except _DB_ERRORS as exc:
            raise errors.StoreError(f"PostgreSQL store error: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _tx(self, fn: Callable[..., sansio.Body[T]], *args: Any) -> T:
        """Run a transaction body (``sansio``) in one transaction, retried (``_run``)."""
        return await self._run(lambda c: sansio.run_async(c, fn(self.cx, *args)), write=True)

    async def _rx(self, fn: Callable[..., sansio.Body[T]], *args: Any) -> T:
        return await self._run(lambda c: sansio.run_async(c, fn(self.cx, *args)), write=False)

    async def _rx_snapshot(self, fn: Callable[..., sansio.Body[T]], *args: Any) -> T:
        """Run a body in a read-only REPEATABLE READ transaction: one snapshot."""

        async def _run(conn: asyncpg.Connection) -> T:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return await sansio.run_async(conn, fn(self.cx, *args))

        return await self._run(_run, write=False)

    # --- accept, complete (the rest of dispatch: ``dispatch.DispatchStore``) --------------

    def _whole_batch_failed(self, exc: BaseException) -> bool:
        return _whole_batch_failed(exc)

    # --- reads ------------------------------------------------------------------------

    async def get_filing(self, filing_id: str) -> models.FilingView | None:
        # coalesced: every accepted filing is read back for its 202, so these come in crowds
        return await self._gets.submit(filing_id)

    async def _get_batch(self, filing_ids: list[str]) -> list[coalesce.Outcome]:
        views = await self._rx(reads.get_filings, filing_ids)
        return [(True, v) for v in views]

    # --- LISTEN/NOTIFY ----------------------------------------------------------------

    async def listen(
        self,
        callback: Callable[[], None],
        *,
        check_every_s: float = 10.0,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Call ``callback`` whenever any process announces new work; runs until cancelled.

        One dedicated connection LISTENs. When it is lost it is re-established with
        backoff, and ``callback`` is called once on every (re)connect for whatever was
        announced while nobody listened; the dispatcher's periodic scan covers the gap.
        """
        started = False
        delay = 0.1
        while True:
            try:
                settings, timeout = self._pool_args["server_settings"], self._pool_args["timeout"]
                conn = await asyncpg.connect(self.dsn, server_settings=settings, timeout=timeout)
            except _DB_ERRORS as exc:
                log.warning("store.listen_connect_failed", error=str(exc), retry_in_s=delay)
                if not started:
                    task_status.started()
                    started = True
                await anyio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            try:
                await conn.add_listener(sansio.CHANNEL, lambda *_: callback())
                callback()
                if not started:
                    task_status.started()
                    started = True
                delay = 0.1
                await self._watch(conn, check_every_s)
                log.warning("store.listen_connection_lost")
            except _DB_ERRORS as exc:
                log.warning("store.listen_failed", error=str(exc))
            finally:
                with anyio.CancelScope(shield=True):
                    try:
                        await asyncio.wait_for(conn.close(), 2)
                    except _CLOSE_ERRORS:
                        conn.terminate()

    async def _watch(self, conn: asyncpg.Connection, check_every_s: float) -> None:
        lost = anyio.Event()
        conn.add_termination_listener(lambda _: lost.set())
        while not conn.is_closed():
            with anyio.move_on_after(check_every_s):
                await lost.wait()
                return
            await conn.fetchval("SELECT 1", timeout=5)


async def _in_transaction(conn: Any, fn: Callable[[Any], Awaitable[T]]) -> T:
    tx = conn.transaction()
    await tx.start()
    try:
        result = await fn(conn)
    except BaseException:
        with anyio.CancelScope(shield=True):
            try:
                await tx.rollback()
            except _DB_ERRORS:
                pass  # the connection is gone; the server rolls back on its own
        raise
    try:
        await tx.commit()
    except _CONNECTION_ERRORS as exc:
        raise _CommitUnknown(str(exc)) from exc
    return result
