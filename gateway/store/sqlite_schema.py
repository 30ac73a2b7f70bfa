"""The SQLite schema: its migrations, the column lists and the named SQL the transaction
bodies share (``sqlite_ops``, ``sqlite_reads``, ``sqlite_audit``), and applying migrations.
"""

from __future__ import annotations

import sqlite3

from gateway import errors
from gateway.store import base

CLAIMABLE = ("pending", "waiting_retry", "deferred", "in_flight")
CLAIMABLE_SQL = "('pending','waiting_retry','deferred','in_flight')"
DONE_SQL = "('delivered','acknowledged','cancelled')"
#: claim order: earliest due_by first (none last), then acceptance order; the claim index
#: is on exactly this expression so SQLite walks it instead of sorting
DUE_KEY = "coalesce(due_by, 9223372036854775807)"
SETTLED_SQL = "('delivered','acknowledged','cancelled','dead','rejected')"

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
CREATE INDEX deliveries_claim ON deliveries (adapter, seq) WHERE state IN {CLAIMABLE_SQL};
CREATE INDEX deliveries_due ON deliveries (available_at) WHERE state IN {CLAIMABLE_SQL};
CREATE INDEX deliveries_order ON deliveries (adapter, ordering_key, seq)
    WHERE state NOT IN {DONE_SQL};
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
CREATE INDEX deliveries_claim ON deliveries (adapter, {DUE_KEY}, seq)
    WHERE state IN {CLAIMABLE_SQL};
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
    (
        7,
        """
ALTER TABLE deliveries ADD COLUMN ack_conflict INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN probe_failures INTEGER NOT NULL DEFAULT 0;
CREATE INDEX deliveries_conflict ON deliveries (filing_seq) WHERE ack_conflict = 1;
""",
    ),
]

F_COLS = (
    "f.seq, f.id, f.filing_type, f.environment, f.reference, f.filer_code, f.idempotency_key, "
    "f.body_hash, f.ordering_key, f.due_by, f.content_type, f.payload, f.payload_is_json, "
    "f.callback_url, f.metadata, f.source, f.received_at, f.status, f.at_risk_at, "
    "f.source_event_id"
)
D_COLS = (
    "d.seq, d.id, d.filing_id, d.adapter, d.state, d.attempts, d.available_at, d.last_error, "
    "d.receipt, d.created_at, d.updated_at, d.delivered_at, d.filing_seq, "
    "d.ack_due_at, d.ack_overdue, d.ack, d.ack_conflict"
)

SQL_LAST_AUDIT = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
SQL_INSERT_AUDIT = "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
SQL_AUDIT_COLS = "seq, at, actor, filing_id, delivery_id, event, details, prev_hash, hash"


def split_sql(script: str) -> list[str]:
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


def schema_version(conn: sqlite3.Connection) -> int:
    try:
        row = conn.execute("SELECT version FROM schema_version").fetchone()
    except sqlite3.OperationalError:
        return 0
    return 0 if row is None else int(row[0])


def migrate(conn: sqlite3.Connection, migrations: list[tuple[int, str]]) -> int:
    """Bring the schema up to the last of ``migrations``; returns the version it is at."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    current = schema_version(conn)
    if current > base.SCHEMA_VERSION:
        raise errors.StoreError(
            f"the database schema is v{current}, newer than this gateway knows "
            f"(v{base.SCHEMA_VERSION}); upgrade edi-gateway"
        )
    for version, script in migrations:
        if version > current:
            for statement in split_sql(script):
                conn.execute(statement)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version VALUES (?)", (version,))
            current = version
    return current
