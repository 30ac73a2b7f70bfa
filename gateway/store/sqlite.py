"""The embedded store: one SQLite file in WAL mode with ``synchronous=FULL``.

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
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import tenacity

from gateway import audit, errors, ids, models
from gateway.store import base, rows, sqlite_acks, sqlite_callbacks
from gateway.store.base import Actor, Claim

T = TypeVar("T")

CLAIMABLE = ("pending", "waiting_retry", "deferred", "in_flight")
_CLAIMABLE_SQL = "('pending','waiting_retry','deferred','in_flight')"
_DONE_SQL = "('delivered','acknowledged','cancelled')"

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
]

_F_COLS = (
    "f.seq, f.id, f.filing_type, f.environment, f.reference, f.filer_code, f.idempotency_key, "
    "f.body_hash, f.ordering_key, f.due_by, f.content_type, f.payload, f.payload_is_json, "
    "f.callback_url, f.metadata, f.source, f.received_at, f.status"
)
_D_COLS = (
    "d.seq, d.id, d.filing_id, d.adapter, d.state, d.attempts, d.available_at, d.last_error, "
    "d.receipt, d.created_at, d.updated_at, d.delivered_at, d.filing_seq, "
    "d.ack_due_at, d.ack_overdue, d.ack"
)

SQL_CLAIM_CANDIDATES = f"""
SELECT d.seq, d.id, d.state, d.attempts, d.filing_seq FROM deliveries d
WHERE d.adapter = ? AND d.state IN {_CLAIMABLE_SQL} AND d.available_at <= ?
  AND NOT EXISTS (
    SELECT 1 FROM deliveries e
    WHERE e.adapter = d.adapter AND e.ordering_key = d.ordering_key AND e.seq < d.seq
      AND (e.state NOT IN {_DONE_SQL} OR (e.state = 'delivered' AND e.hold_until_ack = 1)))
ORDER BY d.seq LIMIT ?
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
SQL_LAST_AUDIT = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
SQL_INSERT_AUDIT = "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


class _Conn:
    """A sqlite3 connection owned by one thread; calls are queued to that thread."""

    def __init__(self, path: str, *, readonly: bool) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edigw-sqlite")
        self._path = path
        self._readonly = readonly
        self.conn: sqlite3.Connection | None = None

    def _connect(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        if not self._readonly:
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        self.conn = conn

    async def start(self) -> None:
        await self.call(self._connect)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

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

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._writer = _Conn(self.path, readonly=False)
        self._reader = _Conn(self.path, readonly=True)
        self._opened = False
        self._lock = threading.Lock()

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
        def _tx() -> T:
            conn = self._writer.conn
            assert conn is not None, "store is not open"
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn, *args)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await self._guard(self._writer, _tx)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        def _run() -> T:
            conn = self._reader.conn
            assert conn is not None, "store is not open"
            return fn(conn, *args)

        return await self._guard(self._reader, _run)

    async def _guard(self, worker: _Conn, fn: Callable[[], T]) -> T:
        if not self._opened:
            raise errors.StoreError("store is closed")
        try:
            async for attempt in tenacity.AsyncRetrying(
                retry=tenacity.retry_if_exception(_retryable),
                wait=tenacity.wait_exponential_jitter(multiplier=0.02, max=0.5, jitter=0.02),
                stop=tenacity.stop_after_delay(10),
                reraise=True,
            ):
                with attempt:
                    return await worker.call(fn)
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

    # --- operator actions -------------------------------------------------------------

    async def retry_filing(self, filing_id: str, *, actor: Actor, now: datetime) -> base.Action:
        return await self._write(_retry_filing, filing_id, actor, now)

    async def cancel_filing(self, filing_id: str, *, actor: Actor, now: datetime) -> base.Action:
        return await self._write(_cancel_filing, filing_id, actor, now)

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

    async def audit_rows(self, *, after_seq: int = 0) -> AsyncIterator[audit.AuditRow]:
        last = after_seq
        while True:
            page = await self._read(
                lambda c, s: c.execute(
                    "SELECT seq, at, actor, filing_id, delivery_id, event, details, prev_hash, "
                    "hash FROM audit WHERE seq > ? ORDER BY seq LIMIT 1000",
                    (s,),
                ).fetchall(),
                last,
            )
            if not page:
                return
            for r in page:
                yield audit.AuditRow(
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
            last = page[-1][0]

    async def filing_history(self, filing_id: str) -> list[audit.AuditRow]:
        def _hist(conn: sqlite3.Connection) -> list[audit.AuditRow]:
            return [
                audit.AuditRow(
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
                for r in conn.execute(
                    "SELECT seq, at, actor, filing_id, delivery_id, event, details, prev_hash, "
                    "hash FROM audit WHERE filing_id = ? ORDER BY seq",
                    (filing_id,),
                )
            ]

        return await self._read(_hist)


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
        self.seq += 1
        h = audit.row_hash(
            self.prev,
            seq=self.seq,
            at=self.at,
            actor=actor.name,
            filing_id=filing_id,
            delivery_id=delivery_id,
            event=event,
            details=details,
        )
        self.conn.execute(
            SQL_INSERT_AUDIT,
            (
                self.seq,
                self.at,
                actor.name,
                filing_id,
                delivery_id,
                event,
                audit.canonical(details),
                self.prev,
                h,
            ),
        )
        self.prev = h


def _refresh_status(conn: sqlite3.Connection, filing_seq: int, now_us: int) -> None:
    states = [
        models.DeliveryState(r[0])
        for r in conn.execute("SELECT state FROM deliveries WHERE filing_seq = ?", (filing_seq,))
    ]
    before = conn.execute(
        "SELECT status, callback_url FROM filings WHERE seq = ?", (filing_seq,)
    ).fetchone()
    status = models.derive_status(states).value
    conn.execute(
        "UPDATE filings SET status = ?, updated_at = ? WHERE seq = ?",
        (status, now_us, filing_seq),
    )
    if before is not None and before[1] and before[0] != status:
        sqlite_callbacks.enqueue_callback(conn, filing_seq, before[0], status, now_us)


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
        payload, is_json = rows.dump_payload(f.payload)
        cur = conn.execute(
            "INSERT INTO filings (id, filing_type, environment, reference, filer_code, "
            "idempotency_key, body_hash, ordering_key, due_by, content_type, payload, "
            "payload_is_json, callback_url, metadata, source, received_at, status, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
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
                "pending",
                now_us,
            ),
        )
        filing_seq = cur.lastrowid
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
                "adapters": item.adapters,
            },
        )
        for adapter in item.adapters:
            blocked = conn.execute(
                "SELECT 1 FROM deliveries WHERE adapter = ? AND ordering_key = ? "
                "AND state IN ('dead','rejected','blocked') LIMIT 1",
                (adapter, f.ordering_key),
            ).fetchone()
            state = models.DeliveryState.BLOCKED if blocked else models.DeliveryState.PENDING
            delivery_id = ids.new_id("dlv")
            conn.execute(
                "INSERT INTO deliveries (id, filing_seq, filing_id, adapter, ordering_key, state, "
                "available_at, due_by, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
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
            )
            trail.add(
                f"delivery.{state.value}",
                actor=actor,
                filing_id=f.id,
                delivery_id=delivery_id,
                details={"adapter": adapter},
            )
        _refresh_status(conn, filing_seq, now_us)
        results.append(base.AcceptResult(f.id, created=True))
    return results


def _claim(
    conn: sqlite3.Connection, owner: str, now: datetime, lease_s: float, limits: dict[str, int]
) -> list[Claim]:
    now_us = rows.us(now)
    lease_until = rows.us(now + timedelta(seconds=lease_s))
    taken: list[tuple[str, str, int, int, int, bool]] = []
    for adapter, limit in limits.items():
        if limit <= 0:
            continue
        for seq, delivery_id, state, attempts, filing_seq in conn.execute(
            SQL_CLAIM_CANDIDATES, (adapter, now_us, limit)
        ).fetchall():
            token = conn.execute(SQL_TAKE, (owner, lease_until, now_us, seq)).fetchone()[0]
            taken.append((delivery_id, adapter, token, attempts, filing_seq, state == "in_flight"))
    if not taken:
        return []
    trail = _Audit(conn, now)
    filings = _load_filings(conn, {t[4] for t in taken})
    claims = []
    for delivery_id, adapter, token, attempts, filing_seq, reclaimed in taken:
        filing = filings[filing_seq]
        details: dict[str, Any] = {"adapter": adapter, "attempt": attempts + 1, "owner": owner}
        if reclaimed:
            details["reclaimed_expired_lease"] = True
        trail.add(
            "delivery.in_flight",
            actor=base.SYSTEM,
            filing_id=filing.id,
            delivery_id=delivery_id,
            details=details,
        )
        _refresh_status(conn, filing_seq, now_us)
        claims.append(
            Claim(
                delivery_id=delivery_id,
                adapter=adapter,
                token=token,
                attempts=attempts,
                filing=filing,
            )
        )
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
) -> bool:
    now_us = rows.us(now)
    row = conn.execute(
        SQL_FINISH,
        (
            state.value,
            1 if spent else 0,
            rows.us(available_at),
            error,
            None if receipt is None else json.dumps(receipt),
            now_us if state is models.DeliveryState.DELIVERED else None,
            now_us,
            claim.delivery_id,
            claim.token,
        ),
    ).fetchone()
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
