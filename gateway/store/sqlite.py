"""The embedded store: one SQLite file in WAL mode with ``synchronous=FULL`` (default;
``sqlite:///path?synchronous=normal`` trades the last commits on power loss for speed).

All writes go through one connection on one thread, each operation one
``BEGIN IMMEDIATE`` transaction, so writes are serialized and an operation's audit
rows commit with the change they record. Reads use a second connection, which WAL
lets run beside the writer. A database that is busy (another process holds the
write lock) is retried briefly with tenacity before the caller sees ``StoreError``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import tenacity

from gateway import audit, errors, ids, models, outages, redact
from gateway.store import base, rows, sqlite_acks, sqlite_callbacks
from gateway.store.base import Actor, Claim

T = TypeVar("T")

CLAIMABLE = ("pending", "waiting_retry", "deferred", "in_flight")
_CLAIMABLE_SQL = "('pending','waiting_retry','deferred','in_flight')"
_DONE_SQL = "('delivered','acknowledged','cancelled')"
#: claim order: earliest due_by first (none last), then acceptance order; the claim index
#: is on exactly this expression so SQLite walks it instead of sorting
_DUE_KEY = "coalesce(due_by, 9223372036854775807)"
_SETTLED_SQL = "('delivered','acknowledged','cancelled','dead','rejected')"

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        f"""
CREATE TABLE filings (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    filing_type     TEXT NOT NULL,
    environment     TEXT NOT NULL,
    reference       TEXT NOT NULL,
    filer_code      TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    body_hash       TEXT NOT NULL,
    ordering_key    TEXT NOT NULL,
    due_by          INTEGER,
    content_type    TEXT NOT NULL,
    payload         TEXT NOT NULL,
    payload_is_json INTEGER NOT NULL,
    callback_url    TEXT,
    metadata        TEXT NOT NULL,
    source          TEXT NOT NULL,
    received_at     INTEGER NOT NULL,
    status          TEXT NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX filings_reference ON filings (reference);
CREATE INDEX filings_status ON filings (status, seq);
CREATE INDEX filings_received ON filings (received_at);

CREATE TABLE deliveries (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    filing_seq   INTEGER NOT NULL REFERENCES filings (seq),
    filing_id    TEXT NOT NULL,
    adapter      TEXT NOT NULL,
    ordering_key TEXT NOT NULL,
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    available_at INTEGER NOT NULL,
    due_by       INTEGER,
    lease_owner  TEXT,
    lease_token  INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    receipt      TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX deliveries_claim ON deliveries (adapter, seq) WHERE state IN {_CLAIMABLE_SQL};
CREATE INDEX deliveries_due ON deliveries (available_at) WHERE state IN {_CLAIMABLE_SQL};
CREATE INDEX deliveries_order ON deliveries (adapter, ordering_key, seq)
    WHERE state NOT IN {_DONE_SQL};
CREATE INDEX deliveries_filing ON deliveries (filing_seq);
CREATE INDEX deliveries_state ON deliveries (state, adapter);

CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    filing_id   TEXT,
    delivery_id TEXT,
    event       TEXT NOT NULL,
    details     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_filing ON audit (filing_id);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;
""",
    ),
    (
        2,
        """
CREATE TABLE audit_prune_guard (id INTEGER PRIMARY KEY CHECK (id = 1));
DROP TRIGGER audit_no_delete;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    WHEN NOT EXISTS (SELECT 1 FROM audit_prune_guard)
    BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;
CREATE INDEX audit_at ON audit (at);
""",
    ),
    (
        3,
        f"""
CREATE TABLE outages (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    adapter     TEXT,
    environment TEXT,
    starts_at   INTEGER NOT NULL,
    ends_at     INTEGER,
    reason      TEXT NOT NULL,
    reference   TEXT,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    removed_at  INTEGER,
    removed_by  TEXT,
    CHECK ((adapter IS NULL) <> (environment IS NULL))
);
CREATE INDEX outages_live ON outages (starts_at) WHERE removed_at IS NULL;
ALTER TABLE filings ADD COLUMN at_risk_at INTEGER;
CREATE INDEX filings_deadline ON filings (due_by) WHERE due_by IS NOT NULL AND at_risk_at IS NULL;
DROP INDEX deliveries_claim;
CREATE INDEX deliveries_claim ON deliveries (adapter, {_DUE_KEY}, seq)
    WHERE state IN {_CLAIMABLE_SQL};
""",
    ),
    (
        4,
        """
ALTER TABLE filings ADD COLUMN source_event_id TEXT;

CREATE TABLE rejected_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    source       TEXT NOT NULL,
    origin       TEXT NOT NULL,
    event_id     TEXT,
    reason       TEXT NOT NULL,
    details      TEXT NOT NULL,
    body         TEXT NOT NULL,
    content_type TEXT,
    received_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX rejected_events_once ON rejected_events (source, event_id)
    WHERE event_id IS NOT NULL;
CREATE INDEX rejected_events_source ON rejected_events (source, seq);
""",
    ),
    (
        5,
        """
ALTER TABLE deliveries ADD COLUMN ack_due_at INTEGER;
ALTER TABLE deliveries ADD COLUMN ack_overdue INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN hold_until_ack INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN ack TEXT;
CREATE INDEX deliveries_ack_due ON deliveries (ack_due_at)
    WHERE state = 'delivered' AND ack_overdue = 0;

CREATE TABLE acks (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT NOT NULL UNIQUE,
    fingerprint         TEXT NOT NULL UNIQUE,
    kind                TEXT NOT NULL,
    outcome             TEXT,
    unsolicited         INTEGER NOT NULL,
    codes               TEXT NOT NULL,
    message             TEXT NOT NULL,
    document            TEXT NOT NULL,
    raw                 TEXT,
    source              TEXT NOT NULL,
    received_at         INTEGER NOT NULL,
    matched_delivery_id TEXT,
    matched_filing_id   TEXT,
    effect              TEXT NOT NULL
);
CREATE INDEX acks_unmatched ON acks (seq) WHERE matched_filing_id IS NULL;
CREATE INDEX acks_filing ON acks (matched_filing_id, seq);

CREATE TABLE x12_counters (
    sender           TEXT NOT NULL,
    receiver         TEXT NOT NULL,
    usage            TEXT NOT NULL,
    last_interchange INTEGER NOT NULL,
    last_group       INTEGER NOT NULL,
    PRIMARY KEY (sender, receiver, usage)
);
CREATE TABLE x12_allocations (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    sender              TEXT NOT NULL,
    receiver            TEXT NOT NULL,
    usage               TEXT NOT NULL,
    interchange_control INTEGER NOT NULL,
    group_control       INTEGER NOT NULL,
    delivery_id         TEXT NOT NULL,
    filing_id           TEXT NOT NULL,
    attempt             INTEGER NOT NULL,
    allocated_at        INTEGER NOT NULL
);
CREATE INDEX x12_allocations_group ON x12_allocations (usage, group_control);
CREATE INDEX x12_allocations_interchange ON x12_allocations (usage, interchange_control);
CREATE INDEX x12_allocations_delivery ON x12_allocations (delivery_id);

CREATE TABLE callbacks (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    filing_id    TEXT NOT NULL,
    url          TEXT NOT NULL,
    event        TEXT NOT NULL,
    body         TEXT NOT NULL,
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    available_at INTEGER NOT NULL,
    lease_owner  TEXT,
    lease_token  INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX callbacks_due ON callbacks (available_at)
    WHERE state IN ('pending','waiting_retry','in_flight');
CREATE INDEX callbacks_filing ON callbacks (filing_id, seq);
""",
    ),
    (
        6,
        """
CREATE INDEX deliveries_held ON deliveries (adapter, ordering_key, seq)
    WHERE state = 'delivered' AND hold_until_ack = 1;
CREATE INDEX deliveries_owner ON deliveries (lease_owner) WHERE state = 'in_flight';
CREATE INDEX callbacks_owner ON callbacks (lease_owner) WHERE state = 'in_flight';
""",
    ),
]

_F_COLS = (
    "f.seq, f.id, f.filing_type, f.environment, f.reference, f.filer_code, f.idempotency_key, "
    "f.body_hash, f.ordering_key, f.due_by, f.content_type, f.payload, f.payload_is_json, "
    "f.callback_url, f.metadata, f.source, f.received_at, f.status, f.at_risk_at, "
    "f.source_event_id"
)
_D_COLS = (
    "d.seq, d.id, d.filing_id, d.adapter, d.state, d.attempts, d.available_at, d.last_error, "
    "d.receipt, d.created_at, d.updated_at, d.delivered_at, d.filing_seq, "
    "d.ack_due_at, d.ack_overdue, d.ack"
)

#: the heads of their ordering keys, in claim order. The predecessor check is two NOT
#: EXISTS, each matching a partial index's WHERE exactly (``deliveries_order``,
#: ``deliveries_held``): written as one ``... OR ...`` it matched neither, and SQLite
#: walked every earlier delivery for every candidate (quadratic in the table's size)
SQL_CLAIM_CANDIDATES = f"""
SELECT d.seq, d.id, d.state, d.attempts, d.filing_seq FROM deliveries d
WHERE d.adapter = ? AND d.state IN {_CLAIMABLE_SQL} AND d.available_at <= ?
  AND NOT EXISTS (
    SELECT 1 FROM deliveries e
    WHERE e.adapter = d.adapter AND e.ordering_key = d.ordering_key AND e.seq < d.seq
      AND e.state NOT IN {_DONE_SQL})
  AND NOT EXISTS (
    SELECT 1 FROM deliveries h
    WHERE h.adapter = d.adapter AND h.ordering_key = d.ordering_key AND h.seq < d.seq
      AND h.state = 'delivered' AND h.hold_until_ack = 1)
ORDER BY {_DUE_KEY.replace("due_by", "d.due_by")}, d.seq LIMIT ?
"""
SQL_TAKE = """
UPDATE deliveries SET state = 'in_flight', lease_owner = ?, lease_token = lease_token + 1,
    available_at = ?, updated_at = ?
WHERE seq = ? RETURNING lease_token
"""
SQL_FINISH = """
UPDATE deliveries SET state = ?, attempts = attempts + ?, available_at = ?, last_error = ?,
    receipt = COALESCE(?, receipt), delivered_at = COALESCE(?, delivered_at),
    lease_owner = NULL, updated_at = ?
WHERE id = ? AND lease_token = ? AND state = 'in_flight'
RETURNING seq, filing_seq, adapter, ordering_key, attempts
"""
#: SQL_FINISH for a sent delivery: also starts (or clears) its ack expectation
SQL_FINISH_SENT = """
UPDATE deliveries SET state = ?, attempts = attempts + ?, available_at = ?, last_error = ?,
    receipt = COALESCE(?, receipt), delivered_at = COALESCE(?, delivered_at),
    lease_owner = NULL, updated_at = ?,
    ack_due_at = ?, ack_overdue = 0, hold_until_ack = ?, ack = NULL
WHERE id = ? AND lease_token = ? AND state = 'in_flight'
RETURNING seq, filing_seq, adapter, ordering_key, attempts
"""
SQL_LAST_AUDIT = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
SQL_INSERT_AUDIT = "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
SQL_AUDIT_COLS = "seq, at, actor, filing_id, delivery_id, event, details, prev_hash, hash"


#: ``?synchronous=`` values of a store URL; FULL (the default) fsyncs the WAL on every commit
SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA")


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


#: most write operations one group-commit transaction holds
GROUP_MAX = 512

#: a queued write: the function, its arguments, and the future its caller awaits
_Op = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


def _settle(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.cancelled():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


def _settle_all(settled: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for fut, ok, value in settled:
        _settle(fut, ok, value)


def _run_group(conn: sqlite3.Connection | None, batch: list[_Op]) -> None:
    """One transaction for a batch of operations, each in its own SAVEPOINT.

    Nobody hears of an outcome before COMMIT; when BEGIN or COMMIT fails every
    operation of the batch gets that error (the callers retry what is retryable).
    """
    outcomes: list[tuple[bool, Any]] = []
    try:
        assert conn is not None, "store is not open"
        conn.execute("BEGIN IMMEDIATE")
        try:
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
    except Exception as exc:  # BEGIN, ROLLBACK TO or COMMIT failed: the whole group did
        outcomes = [(False, exc)] * len(batch)
    # one wake-up per event loop for the whole batch, not one per operation (each
    # call_soon_threadsafe writes to the loop's self-pipe)
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for (_, _, fut, loop), (ok, value) in zip(batch, outcomes, strict=True):
        by_loop.setdefault(loop, []).append((fut, ok, value))
    for loop, settled in by_loop.items():
        loop.call_soon_threadsafe(_settle_all, settled)


class _Connection(sqlite3.Connection):
    """A connection that carries the redactor its audit rows' details pass through."""

    redactor: redact.Redactor


class _Conn:
    """A sqlite3 connection owned by one thread; calls are queued to that thread."""

    def __init__(
        self, path: str, *, readonly: bool, redactor: redact.Redactor, synchronous: str = "FULL"
    ) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edigw-sqlite")
        self._path = path
        self._readonly = readonly
        self._synchronous = synchronous
        self._redactor = redactor
        self.conn: sqlite3.Connection | None = None

    def _connect(self) -> None:
        conn = sqlite3.connect(
            self._path, isolation_level=None, check_same_thread=False, factory=_Connection
        )
        conn.redactor = self._redactor
        conn.execute("PRAGMA busy_timeout = 5000")
        if not self._readonly:
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        self.conn = conn

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
            if self.conn is not None:
                self.conn.close()
                self.conn = None

        try:
            await self.call(_close)
        finally:
            self._executor.shutdown(wait=True)


class SqliteStore:
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
        self._writer = _Conn(
            self.path, readonly=False, redactor=self.redactor, synchronous=self.synchronous
        )
        self._reader = _Conn(
            self.path, readonly=True, redactor=self.redactor, synchronous=self.synchronous
        )
        self._opened = False
        self._lock = threading.Lock()
        self._queue: list[_Op] = []
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
        self._opened = False
        await self._reader.stop()
        await self._writer.stop()

    async def ping(self) -> None:
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    async def schema_version(self) -> int:
        return await self._read(_schema_version)

    async def migrate(self) -> int:
        def _migrate(conn: sqlite3.Connection) -> int:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = _schema_version(conn)
            if current > base.SCHEMA_VERSION:
                raise errors.StoreError(
                    f"the database schema is v{current}, newer than this gateway knows "
                    f"(v{base.SCHEMA_VERSION}); upgrade edi-gateway"
                )
            for version, script in MIGRATIONS:
                if version > current:
                    for statement in _split_sql(script):
                        conn.execute(statement)
                    conn.execute("DELETE FROM schema_version")
                    conn.execute("INSERT INTO schema_version VALUES (?)", (version,))
                    current = version
            return current

        return await self._write(_migrate)

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
            _run_group(self._writer.conn, batch)

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
                if not _retryable(exc):
                    raise
            async for attempt in tenacity.AsyncRetrying(
                retry=tenacity.retry_if_exception(_retryable),
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

    # --- accept -----------------------------------------------------------------------

    async def accept(
        self, items: Sequence[base.NewFiling], *, actor: Actor, now: datetime
    ) -> list[base.AcceptResult]:
        return await self._write(_accept, list(items), actor, now)

    # --- dispatch ---------------------------------------------------------------------

    async def claim(
        self, *, owner: str, now: datetime, lease_s: float, limits: dict[str, int]
    ) -> list[Claim]:
        return await self._write(_claim, owner, now, lease_s, limits)

    async def renew(self, *, owner: str, tokens: dict[str, int], until: datetime) -> int:
        def _renew(conn: sqlite3.Connection) -> int:
            n = 0
            for delivery_id, token in tokens.items():
                n += conn.execute(
                    "UPDATE deliveries SET available_at = ? WHERE id = ? AND lease_token = ? "
                    "AND lease_owner = ? AND state = 'in_flight'",
                    (rows.us(until), delivery_id, token, owner),
                ).rowcount
            return n

        return await self._write(_renew)

    async def complete(
        self,
        claim: Claim,
        *,
        now: datetime,
        receipt: dict[str, Any],
        ack_due_at: datetime | None = None,
        hold_until_ack: bool = False,
    ) -> bool:
        return await self._write(
            sqlite_acks.complete_expecting_ack, claim, now, receipt, ack_due_at, hold_until_ack
        )

    async def schedule_retry(
        self, claim: Claim, *, now: datetime, at: datetime, error: str
    ) -> bool:
        return await self._write(
            _finish,
            claim,
            now,
            models.DeliveryState.WAITING_RETRY,
            at,
            error,
            None,
            True,
            "delivery.retry_scheduled",
            {"error": error, "next_attempt_at": rows.iso(at)},
        )

    async def defer(self, claim: Claim, *, now: datetime, until: datetime, reason: str) -> bool:
        return await self._write(
            _finish,
            claim,
            now,
            models.DeliveryState.DEFERRED,
            until,
            reason,
            None,
            False,
            "delivery.deferred",
            {"reason": reason, "until": rows.iso(until)},
        )

    async def kill(self, claim: Claim, *, now: datetime, error: str, spent: bool = True) -> bool:
        return await self._write(
            _finish,
            claim,
            now,
            models.DeliveryState.DEAD,
            now,
            error,
            None,
            spent,
            "delivery.dead",
            {"error": error},
        )

    async def release(self, *, owner: str, now: datetime) -> int:
        return await self._write(_release, owner, now)

    async def next_due(self) -> datetime | None:
        def _next(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                f"SELECT MIN(available_at) FROM deliveries WHERE state IN {_CLAIMABLE_SQL}"
            ).fetchone()
            return None if row is None else row[0]

        value = await self._read(_next)
        return None if value is None else rows.dt(value)

    # --- reads ------------------------------------------------------------------------

    async def get_filing(self, filing_id: str) -> models.FilingView | None:
        return await self._read(_get_filing, filing_id)

    async def list_filings(
        self, flt: base.ListFilter, *, limit: int, cursor: str | None
    ) -> models.Page:
        return await self._read(_list_filings, flt, limit, cursor)

    async def counts(self) -> dict[str, dict[str, int]]:
        def _counts(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
            out: dict[str, dict[str, int]] = {}
            for adapter, state, n in conn.execute(
                "SELECT adapter, state, COUNT(*) FROM deliveries GROUP BY adapter, state"
            ):
                out.setdefault(adapter, {})[state] = n
            return out

        return await self._read(_counts)

    # --- monitoring (issue 7) ------------------------------------------------------------

    async def queue_stats(self) -> base.QueueStats:
        return await self._read(_queue_stats)

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
            return await self._read(_bulk_select, action, flt, limit, True)
        return await self._write(_bulk_action, action, flt, actor, now, reason, limit)

    # --- operator actions -------------------------------------------------------------

    async def retry_filing(self, filing_id: str, *, actor: Actor, now: datetime) -> base.Action:
        return await self._write(_retry_filing, filing_id, actor, now)

    async def cancel_filing(self, filing_id: str, *, actor: Actor, now: datetime) -> base.Action:
        return await self._write(_cancel_filing, filing_id, actor, now)

    # --- outages (issue 3) -------------------------------------------------------------

    async def add_outage(
        self, request: outages.OutageRequest, *, actor: Actor, now: datetime
    ) -> outages.Outage:
        return await self._write(_add_outage, request, actor, now)

    async def list_outages(
        self, *, now: datetime, include_past: bool = False
    ) -> list[outages.Outage]:
        def _list(conn: sqlite3.Connection) -> list[outages.Outage]:
            sql = f"SELECT {_O_COLS} FROM outages WHERE removed_at IS NULL"
            params: list[Any] = []
            if not include_past:
                sql += " AND (ends_at IS NULL OR ends_at > ?)"
                params.append(rows.us(now))
            return [_outage(r) for r in conn.execute(sql + " ORDER BY starts_at, seq", params)]

        return await self._read(_list)

    async def remove_outage(self, outage_id: str, *, actor: Actor, now: datetime) -> outages.Outage:
        return await self._write(_remove_outage, outage_id, actor, now)

    async def defer_held(
        self,
        *,
        adapter: str,
        until: datetime,
        reason: str,
        now: datetime,
        environment: str | None = None,
    ) -> int:
        return await self._write(_defer_held, adapter, environment, until, reason, now)

    async def flag_at_risk(
        self,
        *,
        now: datetime,
        due_before: datetime,
        windows: Sequence[base.RiskWindow] = (),
    ) -> list[tuple[str, datetime]]:
        return await self._write(_flag_at_risk, now, due_before, list(windows))

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

    # --- audit ------------------------------------------------------------------------

    async def append_audit(
        self, event: str, *, actor: Actor, now: datetime, details: dict[str, Any]
    ) -> None:
        def _append(conn: sqlite3.Connection) -> None:
            _Audit(conn, now).add(event, actor=actor, details=details)

        await self._write(_append)

    async def reject_event(self, event: models.RejectedEvent) -> bool:
        """Keep an inbound event that could not become a filing; False if already kept."""
        return await self._write(_reject_event, event)

    async def list_rejected(
        self, *, source: str | None, limit: int, cursor: str | None
    ) -> tuple[list[models.RejectedEvent], str | None]:
        return await self._read(_list_rejected, source, limit, cursor)

    async def audit_rows(self, *, after_seq: int = 0) -> AsyncIterator[audit.AuditRow]:
        last = after_seq
        while True:
            page = await self._read(
                lambda c, s: c.execute(
                    f"SELECT {SQL_AUDIT_COLS} FROM audit WHERE seq > ? ORDER BY seq LIMIT 1000",
                    (s,),
                ).fetchall(),
                last,
            )
            if not page:
                return
            for r in page:
                yield _audit_row(r)
            last = page[-1][0]

    async def filing_history(self, filing_id: str) -> list[audit.AuditRow]:
        def _hist(conn: sqlite3.Connection) -> list[audit.AuditRow]:
            return [
                _audit_row(r)
                for r in conn.execute(
                    f"SELECT {SQL_AUDIT_COLS} FROM audit WHERE filing_id = ? ORDER BY seq",
                    (filing_id,),
                )
            ]

        return await self._read(_hist)

    async def audit_head(self) -> tuple[int, str] | None:
        row = await self._read(lambda c: c.execute(SQL_LAST_AUDIT).fetchone())
        return None if row is None else (int(row[0]), str(row[1]))

    async def prune_audit(
        self, *, before: datetime, actor: Actor, now: datetime
    ) -> base.PruneResult:
        return await self._write(_prune_audit, before, actor, now)


def _audit_row(r: Sequence[Any]) -> audit.AuditRow:
    return audit.AuditRow(
        seq=r[0],
        at=r[1],
        actor=r[2],
        filing_id=r[3],
        delivery_id=r[4],
        event=r[5],
        details=json.loads(r[6]),
        prev_hash=r[7],
        hash=r[8],
    )


def _prune_audit(
    conn: sqlite3.Connection, before: datetime, actor: Actor, now: datetime
) -> base.PruneResult:
    """Delete the oldest rows (all older than ``before``) and append the anchor row.

    The append-only trigger lets a DELETE through only while ``audit_prune_guard``
    holds its one row, which exists only inside this transaction.
    """
    first = conn.execute("SELECT MIN(seq) FROM audit").fetchone()[0]
    younger = conn.execute("SELECT MIN(seq) FROM audit WHERE at >= ?", (rows.iso(before),))
    stop = younger.fetchone()[0]
    trail = _Audit(conn, now)
    cutoff = trail.seq if stop is None else stop - 1
    if first is None or cutoff < first:
        return base.PruneResult(removed=0, first_seq=None, last_seq=None, anchor_seq=None)
    continues_from = conn.execute("SELECT hash FROM audit WHERE seq = ?", (cutoff,)).fetchone()[0]
    conn.execute("INSERT INTO audit_prune_guard (id) VALUES (1)")
    removed = conn.execute("DELETE FROM audit WHERE seq <= ?", (cutoff,)).rowcount
    conn.execute("DELETE FROM audit_prune_guard")
    trail.add(
        audit.PRUNED,
        actor=actor,
        details={
            "before": rows.iso(before),
            "removed_from_seq": first,
            "removed_to_seq": cutoff,
            "removed_rows": removed,
            "continues_from": continues_from,
        },
    )
    return base.PruneResult(removed=removed, first_seq=first, last_seq=cutoff, anchor_seq=trail.seq)


# --- transaction bodies (run on the writer thread) --------------------------------------


def _split_sql(script: str) -> list[str]:
    """Statements of a migration script; trigger bodies keep their inner semicolons."""
    out, buf = [], []
    for line in script.splitlines():
        buf.append(line)
        joined = "\n".join(buf).strip()
        if joined.endswith(";") and (
            not joined.upper().startswith("CREATE TRIGGER") or joined.upper().endswith("END;")
        ):
            out.append(joined)
            buf = []
    if "\n".join(buf).strip():
        out.append("\n".join(buf).strip())
    return out


def _schema_version(conn: sqlite3.Connection) -> int:
    try:
        row = conn.execute("SELECT version FROM schema_version").fetchone()
    except sqlite3.OperationalError:
        return 0
    return 0 if row is None else int(row[0])


class _Audit:
    """Appends hash-chained audit rows inside the current transaction."""

    def __init__(self, conn: sqlite3.Connection, now: datetime) -> None:
        self.conn = conn
        self.redactor: redact.Redactor = getattr(conn, "redactor", None) or redact.Redactor()
        self.at = rows.iso(now)
        last = conn.execute(SQL_LAST_AUDIT).fetchone()
        self.seq, self.prev = (last[0], last[1]) if last else (0, audit.GENESIS)
        self.pending: list[tuple[Any, ...]] = []

    def add(
        self,
        event: str,
        *,
        actor: Actor,
        filing_id: str | None = None,
        delivery_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        details = dict(details or {})
        if actor.request_id:
            details.setdefault("request_id", actor.request_id)
        text = audit.canonical(self.redactor.value(details))
        self.seq += 1
        h = audit.row_hash_of_canonical(
            self.prev,
            seq=self.seq,
            at=self.at,
            actor=actor.name,
            filing_id=filing_id,
            delivery_id=delivery_id,
            event=event,
            details_json=text,
        )
        self.conn.execute(
            SQL_INSERT_AUDIT,
            (self.seq, self.at, actor.name, filing_id, delivery_id, event, text, self.prev, h),
        )
        self.prev = h


def _refresh_status(conn: sqlite3.Connection, filing_seq: int, now_us: int) -> None:
    _refresh_statuses(conn, [filing_seq], now_us)


def _refresh_statuses(conn: sqlite3.Connection, filing_seqs: Sequence[int], now_us: int) -> None:
    """Derive each filing's status from its deliveries (two SELECTs for the whole set);
    a filing with a callback_url whose status changed gets its callback queued."""
    seqs = list(dict.fromkeys(filing_seqs))
    if not seqs:
        return
    marks = ",".join("?" * len(seqs))
    states: dict[int, list[models.DeliveryState]] = {s: [] for s in seqs}
    for fs, state in conn.execute(
        f"SELECT filing_seq, state FROM deliveries WHERE filing_seq IN ({marks})", seqs
    ):
        states[fs].append(models.DeliveryState(state))
    before = {
        r[0]: (r[1], r[2])
        for r in conn.execute(
            f"SELECT seq, status, callback_url FROM filings WHERE seq IN ({marks})", seqs
        )
    }
    updates = []
    for fs in seqs:
        status = models.derive_status(states[fs]).value
        updates.append((status, now_us, fs))
        old = before.get(fs)
        if old is not None and old[1] and old[0] != status:
            sqlite_callbacks.enqueue_callback(conn, fs, old[0], status, now_us)
    conn.executemany("UPDATE filings SET status = ?, updated_at = ? WHERE seq = ?", updates)


#: is an earlier delivery of this (adapter, ordering key) dead, rejected or blocked?
SQL_BLOCKED_BEHIND = (
    "SELECT 1 FROM deliveries WHERE adapter = ? AND ordering_key = ? "
    f"AND state NOT IN {_DONE_SQL} AND state IN ('dead','rejected','blocked') LIMIT 1"
)
SQL_INSERT_FILING = (
    "INSERT INTO filings (id, filing_type, environment, reference, filer_code, "
    "idempotency_key, body_hash, ordering_key, due_by, content_type, payload, "
    "payload_is_json, callback_url, metadata, source, received_at, status, updated_at, "
    "source_event_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
SQL_INSERT_DELIVERY = (
    "INSERT INTO deliveries (id, filing_seq, filing_id, adapter, ordering_key, state, "
    "available_at, due_by, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)"
)


def _accept(
    conn: sqlite3.Connection, items: list[base.NewFiling], actor: Actor, now: datetime
) -> list[base.AcceptResult]:
    now_us = rows.us(now)
    trail = _Audit(conn, now)
    results: list[base.AcceptResult] = []
    for item in items:
        f = item.filing
        if f.idempotency_key is not None:
            row = conn.execute(
                "SELECT id, body_hash FROM filings WHERE idempotency_key = ?", (f.idempotency_key,)
            ).fetchone()
            if row is not None:
                if row[1] == f.body_hash:
                    results.append(base.AcceptResult(row[0], created=False))
                else:
                    results.append(
                        base.AcceptResult(
                            row[0],
                            created=False,
                            error=errors.IdempotencyKeyReused(
                                details={"idempotency_key": f.idempotency_key, "filing_id": row[0]}
                            ),
                        )
                    )
                continue
        results.append(_accept_new(conn, trail, item, actor, now_us))
    return results


def _accept_new(
    conn: sqlite3.Connection, trail: _Audit, item: base.NewFiling, actor: Actor, now_us: int
) -> base.AcceptResult:
    """Insert one new filing and its deliveries with the status they give it, and build
    the view the 202 answers with from what was written (no read back)."""
    f = item.filing
    states = [
        models.DeliveryState.BLOCKED
        if conn.execute(SQL_BLOCKED_BEHIND, (adapter, f.ordering_key)).fetchone()
        else models.DeliveryState.PENDING
        for adapter in item.adapters
    ]
    status = models.derive_status(states).value
    payload, is_json = rows.dump_payload(f.payload)
    filing_row: tuple[Any, ...] = (
        f.id,
        f.filing_type.value,
        f.environment.value,
        f.reference,
        f.filer_code,
        f.idempotency_key,
        f.body_hash,
        f.ordering_key,
        rows.us_or_none(f.due_by),
        f.content_type,
        payload,
        is_json,
        f.callback_url,
        json.dumps(f.metadata),
        f.source,
        rows.us(f.received_at),
        status,
        now_us,
        f.source_event_id,
    )
    filing_seq = conn.execute(SQL_INSERT_FILING, filing_row).lastrowid
    assert filing_seq is not None
    trail.add(
        "filing.accepted",
        actor=actor,
        filing_id=f.id,
        details={
            "filing_type": f.filing_type.value,
            "environment": f.environment.value,
            "reference": f.reference,
            "filer_code": f.filer_code,
            "body_hash": f.body_hash,
            "source": f.source,
            "source_event_id": f.source_event_id,
            "adapters": item.adapters,
        },
    )
    deliveries: list[models.Delivery] = []
    for adapter, state in zip(item.adapters, states, strict=True):
        delivery_id = ids.new_id("dlv")
        d_seq = conn.execute(
            SQL_INSERT_DELIVERY,
            (
                delivery_id,
                filing_seq,
                f.id,
                adapter,
                f.ordering_key,
                state.value,
                now_us,
                rows.us_or_none(f.due_by),
                now_us,
                now_us,
            ),
        ).lastrowid
        trail.add(
            f"delivery.{state.value}",
            actor=actor,
            filing_id=f.id,
            delivery_id=delivery_id,
            details={"adapter": adapter},
        )
        d_row = (d_seq, delivery_id, f.id, adapter, state.value, 0, now_us, None, None)
        deliveries.append(rows.delivery((*d_row, now_us, now_us, None, filing_seq, None, 0, None)))
    if f.callback_url and status != "pending":  # e.g. accepted behind a dead delivery
        sqlite_callbacks.enqueue_callback(conn, filing_seq, "pending", status, now_us)
    view_row = (filing_seq, *filing_row[:13], f.metadata, f.source, filing_row[15], status)
    view = rows.filing_view((*view_row, None, f.source_event_id), deliveries)
    return base.AcceptResult(f.id, created=True, view=view)


SQL_TAKE_MANY = """
UPDATE deliveries SET state = 'in_flight', lease_owner = ?, lease_token = lease_token + 1,
    available_at = ?, updated_at = ?
WHERE seq IN ({marks}) RETURNING seq, lease_token
"""


def _claim(
    conn: sqlite3.Connection, owner: str, now: datetime, lease_s: float, limits: dict[str, int]
) -> list[Claim]:
    now_us = rows.us(now)
    lease_until = rows.us(now + timedelta(seconds=lease_s))
    found: list[tuple[int, str, str, str, int, int]] = []
    for adapter, limit in limits.items():
        if limit <= 0:
            continue
        found += [
            (seq, delivery_id, adapter, state, attempts, filing_seq)
            for seq, delivery_id, state, attempts, filing_seq in conn.execute(
                SQL_CLAIM_CANDIDATES, (adapter, now_us, limit)
            ).fetchall()
        ]
    if not found:
        return []
    tokens: dict[int, int] = {}
    for i in range(0, len(found), 500):  # one UPDATE per 500 (SQLite's variable limit)
        chunk = [f[0] for f in found[i : i + 500]]
        sql = SQL_TAKE_MANY.format(marks=",".join("?" * len(chunk)))
        tokens.update(conn.execute(sql, (owner, lease_until, now_us, *chunk)).fetchall())
    trail = _Audit(conn, now)
    filings = _load_filings(conn, {f[5] for f in found})
    claims = []
    for seq, delivery_id, adapter, state, attempts, filing_seq in found:
        filing = filings[filing_seq]
        details: dict[str, Any] = {"adapter": adapter, "attempt": attempts + 1, "owner": owner}
        if state == "in_flight":
            details["reclaimed_expired_lease"] = True
        trail.add(
            "delivery.in_flight",
            actor=base.SYSTEM,
            filing_id=filing.id,
            delivery_id=delivery_id,
            details=details,
        )
        claims.append(
            Claim(
                delivery_id=delivery_id,
                adapter=adapter,
                token=tokens[seq],
                attempts=attempts,
                filing=filing,
            )
        )
    _refresh_statuses(conn, [f[5] for f in found], now_us)
    return claims


def _finish(
    conn: sqlite3.Connection,
    claim: Claim,
    now: datetime,
    state: models.DeliveryState,
    available_at: datetime,
    error: str | None,
    receipt: dict[str, Any] | None,
    spent: bool,
    event: str,
    details: dict[str, Any],
    ack: tuple[int | None, bool] | None = None,
) -> bool:
    """Settle a claimed delivery if its lease token still holds (the fence). ``ack`` is
    (ack due at in µs, hold the ordering key until acknowledged) for a sent delivery."""
    now_us = rows.us(now)
    head: tuple[Any, ...] = (
        state.value,
        1 if spent else 0,
        rows.us(available_at),
        error,
        None if receipt is None else json.dumps(receipt),
        now_us if state is models.DeliveryState.DELIVERED else None,
        now_us,
    )
    fence = (claim.delivery_id, claim.token)
    if ack is None:
        row = conn.execute(SQL_FINISH, head + fence).fetchone()
    else:
        row = conn.execute(SQL_FINISH_SENT, (*head, ack[0], int(ack[1]), *fence)).fetchone()
    if row is None:
        return False
    seq, filing_seq, adapter, ordering_key, attempts = row
    trail = _Audit(conn, now)
    trail.add(
        event,
        actor=base.SYSTEM,
        filing_id=claim.filing.id,
        delivery_id=claim.delivery_id,
        details={"adapter": adapter, "attempts": attempts, **details},
    )
    touched = {filing_seq}
    if state is models.DeliveryState.DEAD:
        touched |= _block_successors(conn, trail, adapter, ordering_key, seq, now_us)
    for fs in touched:
        _refresh_status(conn, fs, now_us)
    return True


def _block_successors(
    conn: sqlite3.Connection,
    trail: _Audit,
    adapter: str,
    ordering_key: str,
    after_seq: int,
    now_us: int,
) -> set[int]:
    changed = conn.execute(
        "UPDATE deliveries SET state = 'blocked', updated_at = ? WHERE adapter = ? "
        "AND ordering_key = ? AND seq > ? AND state IN ('pending','waiting_retry','deferred') "
        "RETURNING id, filing_id, filing_seq",
        (now_us, adapter, ordering_key, after_seq),
    ).fetchall()
    for delivery_id, filing_id, _ in changed:
        trail.add(
            "delivery.blocked",
            actor=base.SYSTEM,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={"adapter": adapter, "ordering_key": ordering_key},
        )
    return {r[2] for r in changed}


def _reblock(
    conn: sqlite3.Connection,
    trail: _Audit,
    actor: Actor,
    adapter: str,
    ordering_key: str,
    now_us: int,
) -> set[int]:
    """Recompute ``blocked`` for one ordering key after an operator action."""
    touched: set[int] = set()
    blocked_by_predecessor = False
    for seq, delivery_id, filing_id, filing_seq, state in conn.execute(
        f"SELECT seq, id, filing_id, filing_seq, state FROM deliveries WHERE adapter = ? "
        f"AND ordering_key = ? AND state NOT IN {_DONE_SQL} ORDER BY seq",
        (adapter, ordering_key),
    ).fetchall():
        if state in ("dead", "rejected"):
            blocked_by_predecessor = True
            continue
        new = None
        if blocked_by_predecessor and state in ("pending", "waiting_retry", "deferred"):
            new = "blocked"
        elif not blocked_by_predecessor and state == "blocked":
            new = "pending"
        if new is not None:
            conn.execute(
                "UPDATE deliveries SET state = ?, available_at = ?, updated_at = ? WHERE seq = ?",
                (new, now_us, now_us, seq),
            )
            trail.add(
                f"delivery.{'blocked' if new == 'blocked' else 'unblocked'}",
                actor=actor,
                filing_id=filing_id,
                delivery_id=delivery_id,
                details={"adapter": adapter},
            )
            touched.add(filing_seq)
    return touched


def _filing_seq(conn: sqlite3.Connection, filing_id: str) -> int:
    row = conn.execute("SELECT seq FROM filings WHERE id = ?", (filing_id,)).fetchone()
    if row is None:
        raise errors.NotFound(f"no filing {filing_id}", details={"id": filing_id})
    return int(row[0])


def _retry_filing(
    conn: sqlite3.Connection, filing_id: str, actor: Actor, now: datetime
) -> base.Action:
    filing_seq = _filing_seq(conn, filing_id)
    now_us = rows.us(now)
    changed = conn.execute(
        "UPDATE deliveries SET state = 'pending', attempts = 0, available_at = ?, "
        "last_error = NULL, lease_owner = NULL, updated_at = ? "
        "WHERE filing_seq = ? AND state IN ('dead','blocked') RETURNING id, adapter, ordering_key",
        (now_us, now_us, filing_seq),
    ).fetchall()
    if not changed:
        raise errors.Conflict(
            f"filing {filing_id} has no dead or blocked delivery to retry",
            details={"id": filing_id},
        )
    trail = _Audit(conn, now)
    touched = {filing_seq}
    for delivery_id, adapter, _ in changed:
        trail.add(
            "delivery.retried",
            actor=actor,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={"adapter": adapter},
        )
    for adapter, ordering_key in {(r[1], r[2]) for r in changed}:
        touched |= _reblock(conn, trail, actor, adapter, ordering_key, now_us)
    for fs in touched:
        _refresh_status(conn, fs, now_us)
    return base.Action(filing_id, [r[0] for r in changed])


def _cancel_filing(
    conn: sqlite3.Connection, filing_id: str, actor: Actor, now: datetime
) -> base.Action:
    filing_seq = _filing_seq(conn, filing_id)
    now_us = rows.us(now)
    changed = conn.execute(
        "UPDATE deliveries SET state = 'cancelled', lease_owner = NULL, "
        "lease_token = lease_token + 1, updated_at = ? WHERE filing_seq = ? AND state IN "
        "('pending','in_flight','waiting_retry','deferred','blocked','dead') "
        "RETURNING id, adapter, ordering_key",
        (now_us, filing_seq),
    ).fetchall()
    if not changed:
        raise errors.Conflict(
            f"filing {filing_id} has nothing left to cancel", details={"id": filing_id}
        )
    trail = _Audit(conn, now)
    touched = {filing_seq}
    for delivery_id, adapter, _ in changed:
        trail.add(
            "delivery.cancelled",
            actor=actor,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={"adapter": adapter},
        )
    for adapter, ordering_key in {(r[1], r[2]) for r in changed}:
        touched |= _reblock(conn, trail, actor, adapter, ordering_key, now_us)
    for fs in touched:
        _refresh_status(conn, fs, now_us)
    return base.Action(filing_id, [r[0] for r in changed])


def _release(conn: sqlite3.Connection, owner: str, now: datetime) -> int:
    now_us = rows.us(now)
    changed = conn.execute(
        "UPDATE deliveries SET state = CASE WHEN attempts = 0 THEN 'pending' "
        "ELSE 'waiting_retry' END, lease_owner = NULL, lease_token = lease_token + 1, "
        "available_at = ?, updated_at = ? WHERE lease_owner = ? AND state = 'in_flight' "
        "RETURNING id, filing_id, filing_seq, adapter, state",
        (now_us, now_us, owner),
    ).fetchall()
    if changed:
        trail = _Audit(conn, now)
        for delivery_id, filing_id, _, adapter, state in changed:
            trail.add(
                "delivery.released",
                actor=base.SYSTEM,
                filing_id=filing_id,
                delivery_id=delivery_id,
                details={"adapter": adapter, "state": state},
            )
        for fs in {r[2] for r in changed}:
            _refresh_status(conn, fs, now_us)
    return len(changed)


# --- reads (run on the reader thread) ---------------------------------------------------


def _load_filings(conn: sqlite3.Connection, seqs: set[int]) -> dict[int, models.Filing]:
    ordered = sorted(seqs)
    marks = ",".join("?" * len(ordered))
    return {
        r[0]: rows.filing(r)
        for r in conn.execute(f"SELECT {_F_COLS} FROM filings f WHERE f.seq IN ({marks})", ordered)
    }


def _deliveries_of(
    conn: sqlite3.Connection, filing_seqs: list[int]
) -> dict[int, list[models.Delivery]]:
    out: dict[int, list[models.Delivery]] = {s: [] for s in filing_seqs}
    if not filing_seqs:
        return out
    marks = ",".join("?" * len(filing_seqs))
    for r in conn.execute(
        f"SELECT {_D_COLS} FROM deliveries d WHERE d.filing_seq IN ({marks}) ORDER BY d.seq",
        filing_seqs,
    ):
        out[r[12]].append(rows.delivery(r))
    return out


def _get_filing(conn: sqlite3.Connection, filing_id: str) -> models.FilingView | None:
    row = conn.execute(f"SELECT {_F_COLS} FROM filings f WHERE f.id = ?", (filing_id,)).fetchone()
    if row is None:
        return None
    return rows.filing_view(row, _deliveries_of(conn, [row[0]])[row[0]])


def _list_filings(
    conn: sqlite3.Connection, flt: base.ListFilter, limit: int, cursor: str | None
) -> models.Page:
    where, params = [], []
    if cursor is not None:
        where.append("f.seq < ?")
        params.append(rows.decode_cursor(cursor))
    for column, value in (
        ("f.status", flt.status),
        ("f.filing_type", flt.filing_type),
        ("f.environment", flt.environment),
        ("f.reference", flt.reference),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(str(value))
    if flt.since is not None:
        where.append("f.received_at >= ?")
        params.append(rows.us(flt.since))
    if flt.until is not None:
        where.append("f.received_at < ?")
        params.append(rows.us(flt.until))
    if flt.at_risk is not None:
        risky = f"(f.at_risk_at IS NOT NULL AND f.status NOT IN {_SETTLED_SQL})"
        where.append(risky if flt.at_risk else f"NOT {risky}")
    if flt.state is not None or flt.adapter is not None or flt.ack_overdue is not None:
        sub = ["d.filing_seq = f.seq"]
        if flt.ack_overdue is not None:
            sub.append("d.ack_overdue = ?")
            params.append(int(flt.ack_overdue))
        if flt.state is not None:
            sub.append("d.state = ?")
            params.append(flt.state.value)
        if flt.adapter is not None:
            sub.append("d.adapter = ?")
            params.append(flt.adapter)
        where.append(f"EXISTS (SELECT 1 FROM deliveries d WHERE {' AND '.join(sub)})")
    sql = f"SELECT {_F_COLS} FROM filings f"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY f.seq DESC LIMIT ?"
    found = conn.execute(sql, [*params, limit + 1]).fetchall()
    more = len(found) > limit
    found = found[:limit]
    deliveries = _deliveries_of(conn, [r[0] for r in found])
    items = [rows.filing_view(r, deliveries[r[0]]) for r in found]
    next_cursor = rows.encode_cursor(found[-1][0]) if more and found else None
    return models.Page(items=items, next_cursor=next_cursor)


# --- outages (issue 3) ------------------------------------------------------------------

_O_COLS = (
    "id, adapter, environment, starts_at, ends_at, reason, reference, created_at, created_by, "
    "removed_at"
)


def _outage(r: Sequence[Any]) -> outages.Outage:
    return outages.Outage(
        id=r[0],
        adapter=r[1],
        environment=r[2],
        starts_at=rows.dt(r[3]),
        ends_at=rows.dt_or_none(r[4]),
        reason=r[5],
        reference=r[6],
        created_at=rows.dt(r[7]),
        created_by=r[8],
        removed_at=rows.dt_or_none(r[9]),
    )


def _outage_details(o: outages.Outage) -> dict[str, Any]:
    return {
        "outage_id": o.id,
        "adapter": o.adapter,
        "environment": None if o.environment is None else o.environment.value,
        "starts_at": rows.iso(o.starts_at),
        "ends_at": None if o.ends_at is None else rows.iso(o.ends_at),
        "reason": o.reason,
        "reference": o.reference,
    }


def _add_outage(
    conn: sqlite3.Connection, req: outages.OutageRequest, actor: Actor, now: datetime
) -> outages.Outage:
    outage = outages.Outage(
        id=ids.new_id("out"),
        adapter=req.adapter,
        environment=req.environment,
        starts_at=req.starts_at or now,
        ends_at=req.ends_at,
        reason=req.reason,
        reference=req.reference,
        created_at=now,
        created_by=actor.name,
    )
    conn.execute(
        "INSERT INTO outages (id, adapter, environment, starts_at, ends_at, reason, reference, "
        "created_at, created_by) VALUES (?,?,?,?,?,?,?,?,?)",
        (
            outage.id,
            outage.adapter,
            None if outage.environment is None else outage.environment.value,
            rows.us(outage.starts_at),
            rows.us_or_none(outage.ends_at),
            outage.reason,
            outage.reference,
            rows.us(now),
            actor.name,
        ),
    )
    _Audit(conn, now).add("outage.added", actor=actor, details=_outage_details(outage))
    return outage


def _remove_outage(
    conn: sqlite3.Connection, outage_id: str, actor: Actor, now: datetime
) -> outages.Outage:
    row = conn.execute(f"SELECT {_O_COLS} FROM outages WHERE id = ?", (outage_id,)).fetchone()
    if row is None:
        raise errors.NotFound(f"no outage {outage_id}", details={"id": outage_id})
    if row[9] is not None:
        raise errors.Conflict(f"outage {outage_id} was already removed", details={"id": outage_id})
    now_us = rows.us(now)
    conn.execute(
        "UPDATE outages SET removed_at = ?, removed_by = ? WHERE id = ?",
        (now_us, actor.name, outage_id),
    )
    outage = _outage(row).model_copy(update={"removed_at": now})
    # what it deferred may go at once; anything still held is deferred again by the gate
    scope, params = ("adapter = ?", [outage.adapter])
    if outage.adapter is None:
        scope = "filing_seq IN (SELECT seq FROM filings WHERE environment = ?)"
        params = [None if outage.environment is None else outage.environment.value]
    released = conn.execute(
        f"UPDATE deliveries SET available_at = ?, updated_at = ? "
        f"WHERE state = 'deferred' AND available_at > ? AND {scope}",
        [now_us, now_us, now_us, *params],
    ).rowcount
    _Audit(conn, now).add(
        "outage.removed",
        actor=actor,
        details={**_outage_details(outage), "released_deliveries": released},
    )
    return outage


def _defer_held(
    conn: sqlite3.Connection,
    adapter: str,
    environment: str | None,
    until: datetime,
    reason: str,
    now: datetime,
) -> int:
    """Move the due deliveries of a held adapter (or environment) to ``deferred``."""
    now_us, until_us = rows.us(now), rows.us(until)
    sql = (
        "SELECT seq, id, filing_id, filing_seq, state, attempts FROM deliveries "
        "WHERE adapter = ? AND state IN ('pending','waiting_retry','deferred') "
        "AND available_at <= ?"
    )
    params: list[Any] = [adapter, now_us]
    if environment is not None:
        sql += " AND filing_seq IN (SELECT seq FROM filings WHERE environment = ?)"
        params.append(environment)
    found = conn.execute(sql, params).fetchall()
    if not found:
        return 0
    conn.executemany(
        "UPDATE deliveries SET state = 'deferred', available_at = ?, last_error = ?, "
        "updated_at = ? WHERE seq = ?",
        [(until_us, reason, now_us, r[0]) for r in found],
    )
    trail = _Audit(conn, now)
    touched = set()
    for _, delivery_id, filing_id, filing_seq, state, attempts in found:
        if state == "deferred":
            continue  # only its time moved: not a state change
        trail.add(
            "delivery.deferred",
            actor=base.SYSTEM,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={
                "adapter": adapter,
                "attempts": attempts,
                "reason": reason,
                "until": rows.iso(until),
            },
        )
        touched.add(filing_seq)
    for fs in touched:
        _refresh_status(conn, fs, now_us)
    return len(found)


def _flag_at_risk(
    conn: sqlite3.Connection,
    now: datetime,
    due_before: datetime,
    windows: list[base.RiskWindow],
) -> list[tuple[str, datetime]]:
    """Flag unsettled filings whose due_by is near or inside a known outage; once each."""
    now_us = rows.us(now)
    pending = f"at_risk_at IS NULL AND due_by IS NOT NULL AND status NOT IN {_SETTLED_SQL}"
    checks: list[tuple[str, list[Any], str]] = [
        ("due_by < ?", [rows.us(due_before)], "due_by within the at-risk margin")
    ]
    for w in windows:
        cond = "due_by >= ? AND due_by < ?"
        params: list[Any] = [rows.us(w.start), rows.us(w.end)]
        if w.adapter is not None:
            cond += (
                f" AND EXISTS (SELECT 1 FROM deliveries d WHERE d.filing_seq = filings.seq "
                f"AND d.adapter = ? AND d.state NOT IN {_SETTLED_SQL})"
            )
            params.append(w.adapter)
        if w.environment is not None:
            cond += " AND environment = ?"
            params.append(w.environment)
        checks.append((cond, params, w.reason))
    flagged: list[tuple[str, datetime]] = []
    trail: _Audit | None = None
    for cond, params, reason in checks:
        found = conn.execute(
            f"UPDATE filings SET at_risk_at = ? WHERE {pending} AND {cond} RETURNING id, due_by",
            [now_us, *params],
        ).fetchall()
        for filing_id, due_by in found:
            trail = trail or _Audit(conn, now)
            trail.add(
                "filing.at_risk",
                actor=base.SYSTEM,
                filing_id=filing_id,
                details={"due_by": rows.iso(rows.dt(due_by)), "reason": reason},
            )
            flagged.append((filing_id, rows.dt(due_by)))
    return flagged


# --- rejected inbound events ------------------------------------------------------------

_R_COLS = "seq, id, source, origin, event_id, reason, details, body, content_type, received_at"


def _reject_event(conn: sqlite3.Connection, event: models.RejectedEvent) -> bool:
    cur = conn.execute(
        f"INSERT OR IGNORE INTO rejected_events ({_R_COLS.removeprefix('seq, ')}) "
        "VALUES (?,?,?,?,?,?,?,?,?)",
        (
            event.id,
            event.source,
            event.origin,
            event.event_id,
            event.reason,
            json.dumps(event.details, default=str),
            event.body,
            event.content_type,
            rows.us(event.received_at),
        ),
    )
    if cur.rowcount == 0:
        return False
    _Audit(conn, event.received_at).add(
        "event.rejected",
        actor=Actor(name=f"source:{event.source}"),
        details={
            "rejected_id": event.id,
            "source": event.source,
            "origin": event.origin,
            "event_id": event.event_id,
            "reason": event.reason,
        },
    )
    return True


def _list_rejected(
    conn: sqlite3.Connection, source: str | None, limit: int, cursor: str | None
) -> tuple[list[models.RejectedEvent], str | None]:
    where, params = [], []
    if cursor is not None:
        where.append("seq < ?")
        params.append(rows.decode_cursor(cursor))
    if source is not None:
        where.append("source = ?")
        params.append(source)
    sql = f"SELECT {_R_COLS} FROM rejected_events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    found = conn.execute(sql + " ORDER BY seq DESC LIMIT ?", [*params, limit + 1]).fetchall()
    more = len(found) > limit
    found = found[:limit]
    items = [rows.rejected_event(r) for r in found]
    return items, (rows.encode_cursor(found[-1][0]) if more and found else None)


# --- monitoring (issue 7) ---------------------------------------------------------------

_UNSETTLED_STATUSES = "('pending','in_progress','retrying','deferred','blocked')"


def _queue_stats(conn: sqlite3.Connection) -> base.QueueStats:
    """Counts by (adapter, state) walk the covering index ``deliveries_state``; the oldest
    waiting delivery reads only claimable rows (partial index); at-risk reads only
    unsettled filings (``filings_status``). The caller caches the result."""
    counts: dict[str, dict[str, int]] = {}
    for state, adapter, n in conn.execute(
        "SELECT state, adapter, COUNT(*) FROM deliveries GROUP BY state, adapter"
    ):
        counts.setdefault(adapter, {})[state] = n
    oldest = {
        adapter: rows.dt(first)
        for adapter, first in conn.execute(
            f"SELECT adapter, MIN(created_at) FROM deliveries WHERE state IN {_CLAIMABLE_SQL} "
            "GROUP BY adapter"
        )
    }
    (at_risk,) = conn.execute(
        f"SELECT COUNT(*) FROM filings WHERE status IN {_UNSETTLED_STATUSES} "
        "AND at_risk_at IS NOT NULL"
    ).fetchone()
    return base.QueueStats(counts=counts, oldest_waiting=oldest, at_risk=int(at_risk))


def _bulk_where(action: str, flt: base.BulkFilter) -> tuple[str, list[Any]]:
    allowed = base.BULK_FROM[action]
    if flt.state is not None and flt.state.value not in allowed:
        raise errors.InvalidInput(
            f"{action} applies to deliveries that are {', '.join(allowed)}",
            details=[{"loc": "body.state", "msg": f"one of {', '.join(allowed)}"}],
        )
    states = (flt.state.value,) if flt.state is not None else allowed
    where = [f"d.state IN ({','.join('?' * len(states))})"]
    params: list[Any] = list(states)
    if flt.adapter is not None:
        where.append("d.adapter = ?")
        params.append(flt.adapter)
    if flt.not_after is not None:
        where.append("d.updated_at <= ?")
        params.append(rows.us(flt.not_after))
    sub = []
    for column, value in (("f.filing_type", flt.filing_type), ("f.environment", flt.environment)):
        if value is not None:
            sub.append(f"{column} = ?")
            params.append(value.value)
    if sub:
        where.append(f"d.filing_seq IN (SELECT f.seq FROM filings f WHERE {' AND '.join(sub)})")
    return " AND ".join(where), params


def _bulk_select(
    conn: sqlite3.Connection, action: str, flt: base.BulkFilter, limit: int, dry_run: bool
) -> base.BulkResult:
    where, params = _bulk_where(action, flt)
    (matched,) = conn.execute(f"SELECT COUNT(*) FROM deliveries d WHERE {where}", params).fetchone()
    found = conn.execute(
        f"SELECT d.id, d.filing_id, d.adapter, d.state FROM deliveries d WHERE {where} "
        "ORDER BY d.seq LIMIT ?",
        [*params, limit],
    ).fetchall()
    return base.BulkResult(
        matched=int(matched), deliveries=[tuple(r) for r in found], dry_run=dry_run
    )


def _bulk_action(
    conn: sqlite3.Connection,
    action: str,
    flt: base.BulkFilter,
    actor: Actor,
    now: datetime,
    reason: str,
    limit: int,
) -> base.BulkResult:
    """One chunk of a bulk retry or cancel, audited per delivery and once as a whole."""
    chosen = _bulk_select(conn, action, flt, limit, False)
    if not chosen.deliveries:
        return chosen
    now_us = rows.us(now)
    ids_ = [d[0] for d in chosen.deliveries]
    marks = ",".join("?" * len(ids_))
    if action == "retry":
        sql = (
            "UPDATE deliveries SET state = 'pending', attempts = 0, available_at = ?, "
            "last_error = NULL, lease_owner = NULL, updated_at = ? "
        )
        params: list[Any] = [now_us, now_us]
    else:
        sql = (
            "UPDATE deliveries SET state = 'cancelled', lease_owner = NULL, "
            "lease_token = lease_token + 1, updated_at = ? "
        )
        params = [now_us]
    changed = conn.execute(
        sql + f"WHERE id IN ({marks}) RETURNING id, filing_id, filing_seq, adapter, ordering_key",
        [*params, *ids_],
    ).fetchall()
    trail = _Audit(conn, now)
    event = "delivery.retried" if action == "retry" else "delivery.cancelled"
    touched: set[int] = set()
    for delivery_id, filing_id, filing_seq, adapter, _ in changed:
        trail.add(
            event,
            actor=actor,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={"adapter": adapter, "reason": reason, "bulk": True},
        )
        touched.add(filing_seq)
    for adapter, ordering_key in {(r[3], r[4]) for r in changed}:
        touched |= _reblock(conn, trail, actor, adapter, ordering_key, now_us)
    for fs in touched:
        _refresh_status(conn, fs, now_us)
    trail.add(
        f"operator.bulk_{action}",
        actor=actor,
        details={
            "reason": reason,
            "changed": len(changed),
            "filter": {
                "state": None if flt.state is None else flt.state.value,
                "adapter": flt.adapter,
                "filing_type": None if flt.filing_type is None else flt.filing_type.value,
                "environment": None if flt.environment is None else flt.environment.value,
                "not_after": None if flt.not_after is None else rows.iso(flt.not_after),
            },
        },
    )
    return chosen
