-- The SQLite schema (gateway/store/schema.py): the version table, and the migrations, each
-- `migration_N` block applied once, in order, inside migrate's transaction. Compare with
-- ../postgres/migrations.sql migration by migration.
--
-- Times are INTEGER microseconds since the epoch; flags are INTEGER 0/1. A block is split
-- into statements at each line ending in ";" (a trigger's at its END;). Comments go
-- between statements, never inside one: SQLite keeps a CREATE statement's text in
-- sqlite_master as written. The state lists are spelled out: ('pending','waiting_retry',
-- 'deferred','in_flight') are the claimable states, ('delivered','acknowledged',
-- 'cancelled') the done ones (gateway/lifecycle.py decides both); the claim index's
-- coalesce(due_by, 9223372036854775807) is the claim's order (earliest due_by first,
-- none last), so SQLite walks the index instead of sorting.

-- name: schema_version_table
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);

-- name: schema_version_exists
SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version';

-- name: migration_1
-- filings, their deliveries, the hash-chained audit trail (append-only by trigger)
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
CREATE INDEX deliveries_claim ON deliveries (adapter, seq) WHERE state IN ('pending','waiting_retry','deferred','in_flight');
CREATE INDEX deliveries_due ON deliveries (available_at) WHERE state IN ('pending','waiting_retry','deferred','in_flight');
CREATE INDEX deliveries_order ON deliveries (adapter, ordering_key, seq)
    WHERE state NOT IN ('delivered','acknowledged','cancelled');
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

-- name: migration_2
-- audit pruning: DELETE is let through only while the guard table holds its row
CREATE TABLE audit_prune_guard (id INTEGER PRIMARY KEY CHECK (id = 1));
DROP TRIGGER audit_no_delete;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    WHEN NOT EXISTS (SELECT 1 FROM audit_prune_guard)
    BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;
CREATE INDEX audit_at ON audit (at);

-- name: migration_3
-- outages and deadlines; the claim index becomes (adapter, due key, seq)
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
CREATE INDEX deliveries_claim ON deliveries (adapter, coalesce(due_by, 9223372036854775807), seq)
    WHERE state IN ('pending','waiting_retry','deferred','in_flight');

-- name: migration_4
-- inbound: rejected events, kept once per (source, event id)
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

-- name: migration_5
-- acks, X12 control numbers, callbacks
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

-- name: migration_6
-- the claim's indexes PostgreSQL had from its v1 and v5
CREATE INDEX deliveries_held ON deliveries (adapter, ordering_key, seq)
    WHERE state = 'delivered' AND hold_until_ack = 1;
CREATE INDEX deliveries_owner ON deliveries (lease_owner) WHERE state = 'in_flight';
CREATE INDEX callbacks_owner ON callbacks (lease_owner) WHERE state = 'in_flight';

-- name: migration_7
-- the lifecycle table: ack conflicts for a person, failed breaker probes counted
ALTER TABLE deliveries ADD COLUMN ack_conflict INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN probe_failures INTEGER NOT NULL DEFAULT 0;
CREATE INDEX deliveries_conflict ON deliveries (filing_seq) WHERE ack_conflict = 1;

-- name: migration_8
-- issue 21: operators' pauses of an adapter, a filing type or both (not an outage: nothing
-- is deferred; the claim skips what an active pause names)
CREATE TABLE pauses (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    adapter     TEXT,
    filing_type TEXT,
    reason      TEXT NOT NULL,
    ends_at     INTEGER,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    resumed_at  INTEGER,
    resumed_by  TEXT,
    CHECK (adapter IS NOT NULL OR filing_type IS NOT NULL)
);
CREATE INDEX pauses_active ON pauses (seq) WHERE resumed_at IS NULL;

-- name: migration_9
-- the records archive (issue 20): the segments entered, and legal holds
CREATE TABLE record_segments (
    name        TEXT PRIMARY KEY,
    sha256      TEXT NOT NULL,
    records     INTEGER NOT NULL,
    first_id    TEXT NOT NULL,
    last_id     TEXT NOT NULL,
    archived_at INTEGER NOT NULL,
    purged_at   INTEGER
);
CREATE TABLE record_holds (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    placed_at   INTEGER NOT NULL,
    placed_by   TEXT NOT NULL,
    released_at INTEGER,
    released_by TEXT
);

-- name: migration_10
-- fair delivery between filer codes (issue 22, gateway/rules/fair.py): each delivery's
-- virtual start time and the walk that claims by it; each (adapter, filer code)'s
-- virtual finish; the filers' weights (written by the dispatcher from [fairness]); the
-- unsettled filings by filer code (the quotas' pending count and the queue by filer read
-- only this index)
ALTER TABLE deliveries ADD COLUMN vtime INTEGER NOT NULL DEFAULT 0;
CREATE INDEX deliveries_fair ON deliveries (adapter, vtime, seq)
    WHERE state IN ('pending','waiting_retry','deferred','in_flight');
CREATE TABLE fair_finish (
    adapter    TEXT NOT NULL,
    filer_code TEXT NOT NULL,
    finish     INTEGER NOT NULL,
    PRIMARY KEY (adapter, filer_code)
);
CREATE TABLE fair_weights (
    filer_code TEXT PRIMARY KEY,
    weight     INTEGER NOT NULL
);
CREATE INDEX filings_filer ON filings (status, filer_code);

-- name: migration_11
-- issue 18: a delivery delivered with no ack due (most: an adapter that expects none) no
-- longer enters deliveries_ack_due. Its leading ack_overdue is 0 all through (the WHERE):
-- it gives SQLite's planner, which has no ANALYZE statistics in a gateway's database, an
-- equality to count, so flag_overdue and extend_ack_deadlines (sql/sqlite/acks.sql) walk
-- this index; on (ack_due_at) alone both walked deliveries_state, every delivered delivery
-- ever, on each ack sweep (every [events] overdue_scan, 5 s)
DROP INDEX deliveries_ack_due;
CREATE INDEX deliveries_ack_due ON deliveries (ack_overdue, ack_due_at)
    WHERE state = 'delivered' AND ack_overdue = 0 AND ack_due_at IS NOT NULL;

-- name: migration_12
-- issue 18: the deliveries' partial indexes name their states with = and <>, not IN.
-- SQLite checks a partial index's WHERE on every row it writes (an UPDATE: on the row
-- before and after) and builds a throwaway b-tree for each IN list of three or more
-- values it meets, twice per index on an UPDATE that changes state: about fourteen per
-- filing accepted and delivered. The same sets as ORs and ANDs are plain comparisons.
-- SQLite uses a partial index only for a query whose WHERE holds the index's WHERE
-- (or one of its ORs) as written, so the queries say the same (sql/sqlite/dispatch.sql;
-- fragments.py: state_claimable, holds_key); tests/store/test_sqlite_index_plans.py
-- checks each still walks its index. The claimable states are an OR of four, the states
-- that hold a key's successors back (all but the done ones) an AND of three.
DROP INDEX deliveries_claim;
CREATE INDEX deliveries_claim ON deliveries (adapter, coalesce(due_by, 9223372036854775807), seq)
    WHERE state = 'pending' OR state = 'waiting_retry' OR state = 'deferred' OR state = 'in_flight';
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (available_at)
    WHERE state = 'pending' OR state = 'waiting_retry' OR state = 'deferred' OR state = 'in_flight';
DROP INDEX deliveries_fair;
CREATE INDEX deliveries_fair ON deliveries (adapter, vtime, seq)
    WHERE state = 'pending' OR state = 'waiting_retry' OR state = 'deferred' OR state = 'in_flight';
DROP INDEX deliveries_order;
CREATE INDEX deliveries_order ON deliveries (adapter, ordering_key, seq)
    WHERE state <> 'delivered' AND state <> 'acknowledged' AND state <> 'cancelled';
