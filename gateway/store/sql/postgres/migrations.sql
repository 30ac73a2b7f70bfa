-- The PostgreSQL schema (gateway/store/schema.py): the version table, and the migrations,
-- each `migration_N` block applied once, in order, as one script inside migrate's
-- transaction (under its advisory lock). Compare with ../sqlite/migrations.sql migration by
-- migration: the same tables, columns and indexes.
--
-- Times are BIGINT microseconds since the epoch, as on SQLite, so rows.py converts rows of
-- both backends; flags are BOOLEAN from v5 on (rows.delivery takes bool()). The state lists
-- are spelled out: ('pending','waiting_retry','deferred','in_flight') are the claimable
-- states, ('delivered','acknowledged','cancelled') the done ones (gateway/lifecycle.py
-- decides both); coalesce(due_by, 9223372036854775807) is the claim's order (earliest due_by
-- first, none last).

-- name: schema_version_table
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER);

-- name: schema_version_exists
SELECT to_regclass('schema_version') IS NOT NULL;

-- name: migration_1
-- filings, their deliveries, the hash-chained audit trail (append-only by trigger)
CREATE TABLE filings (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    filing_type     TEXT NOT NULL,
    environment     TEXT NOT NULL,
    reference       TEXT NOT NULL,
    filer_code      TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    body_hash       TEXT NOT NULL,
    ordering_key    TEXT NOT NULL,
    due_by          BIGINT,
    content_type    TEXT NOT NULL,
    payload         TEXT NOT NULL,
    payload_is_json SMALLINT NOT NULL,
    callback_url    TEXT,
    metadata        TEXT NOT NULL,
    source          TEXT NOT NULL,
    received_at     BIGINT NOT NULL,
    status          TEXT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX filings_reference ON filings (reference);
CREATE INDEX filings_status ON filings (status, seq);
CREATE INDEX filings_received ON filings (received_at);

CREATE TABLE deliveries (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    filing_seq   BIGINT NOT NULL REFERENCES filings (seq),
    filing_id    TEXT NOT NULL,
    adapter      TEXT NOT NULL,
    ordering_key TEXT NOT NULL,
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    available_at BIGINT NOT NULL,
    due_by       BIGINT,
    lease_owner  TEXT,
    lease_token  BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT,
    receipt      TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX deliveries_claim ON deliveries (adapter, seq)
    WHERE state IN ('pending','waiting_retry','deferred','in_flight');
CREATE INDEX deliveries_due ON deliveries (available_at)
    WHERE state IN ('pending','waiting_retry','deferred','in_flight');
CREATE INDEX deliveries_order ON deliveries (adapter, ordering_key, seq)
    WHERE state NOT IN ('delivered','acknowledged','cancelled');
CREATE INDEX deliveries_filing ON deliveries (filing_seq);
CREATE INDEX deliveries_state ON deliveries (state, adapter);
CREATE INDEX deliveries_owner ON deliveries (lease_owner) WHERE state = 'in_flight';

CREATE TABLE audit (
    seq         BIGINT PRIMARY KEY,
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
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit rows are append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- name: migration_2
-- Pruning (SQLite's migration 2): DELETE is let through only while the guard table holds
-- its one row, which the audit prune inserts and removes inside its own transaction, so no
-- other transaction ever sees it. The guard is looked up in the audit table's own schema
-- (TG_TABLE_SCHEMA), not through search_path, so a temporary table of the same name cannot
-- open the gate. UPDATE and TRUNCATE stay refused unconditionally. `at` is compared
-- byte-wise (COLLATE "C"): ISO strings then sort as times whatever the database's collation.
CREATE TABLE audit_prune_guard (id INTEGER PRIMARY KEY CHECK (id = 1));
CREATE FUNCTION audit_delete_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    open_ BOOLEAN;
BEGIN
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.audit_prune_guard)', TG_TABLE_SCHEMA)
        INTO open_;
    IF NOT open_ THEN
        RAISE EXCEPTION 'audit rows are append-only' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER audit_no_change ON audit;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_delete_guard();
CREATE INDEX audit_at ON audit (at COLLATE "C");

-- name: migration_3
-- Outages and deadlines (SQLite's migration 3). The claim index becomes (adapter, due key,
-- seq) over claimable rows: the claim orders by exactly that, so the planner walks one
-- adapter's slice in claim order and stops at LIMIT instead of sorting every claimable row;
-- `available_at <= now` and the head check are filters along the walk. When most claimable
-- rows are not yet due (a long outage deferring thousands), deliveries_due on available_at
-- is the cheaper path and the planner may take it: both stay.
CREATE TABLE outages (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    adapter     TEXT,
    environment TEXT,
    starts_at   BIGINT NOT NULL,
    ends_at     BIGINT,
    reason      TEXT NOT NULL,
    reference   TEXT,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    removed_at  BIGINT,
    removed_by  TEXT,
    CHECK ((adapter IS NULL) <> (environment IS NULL))
);
CREATE INDEX outages_live ON outages (starts_at) WHERE removed_at IS NULL;
ALTER TABLE filings ADD COLUMN at_risk_at BIGINT;
CREATE INDEX filings_deadline ON filings (due_by)
    WHERE due_by IS NOT NULL AND at_risk_at IS NULL;
DROP INDEX deliveries_claim;
CREATE INDEX deliveries_claim ON deliveries (adapter, coalesce(due_by, 9223372036854775807), seq)
    WHERE state IN ('pending','waiting_retry','deferred','in_flight');

-- name: migration_4
-- inbound: rejected events, kept once per (source, event id)
ALTER TABLE filings ADD COLUMN source_event_id TEXT;

CREATE TABLE rejected_events (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    source       TEXT NOT NULL,
    origin       TEXT NOT NULL,
    event_id     TEXT,
    reason       TEXT NOT NULL,
    details      TEXT NOT NULL,
    body         TEXT NOT NULL,
    content_type TEXT,
    received_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX rejected_events_once ON rejected_events (source, event_id)
    WHERE event_id IS NOT NULL;
CREATE INDEX rejected_events_source ON rejected_events (source, seq);

-- name: migration_5
-- acks, X12 control numbers, callbacks
ALTER TABLE deliveries ADD COLUMN ack_due_at BIGINT;
ALTER TABLE deliveries ADD COLUMN ack_overdue BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE deliveries ADD COLUMN hold_until_ack BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE deliveries ADD COLUMN ack TEXT;
CREATE INDEX deliveries_ack_due ON deliveries (ack_due_at)
    WHERE state = 'delivered' AND NOT ack_overdue;
-- the claim's "a delivered predecessor held until its ack still holds the key" probe
CREATE INDEX deliveries_held ON deliveries (adapter, ordering_key, seq)
    WHERE state = 'delivered' AND hold_until_ack;

CREATE TABLE acks (
    seq                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                  TEXT NOT NULL UNIQUE,
    fingerprint         TEXT NOT NULL UNIQUE,
    kind                TEXT NOT NULL,
    outcome             TEXT,
    unsolicited         BOOLEAN NOT NULL,
    codes               TEXT NOT NULL,
    message             TEXT NOT NULL,
    document            TEXT NOT NULL,
    raw                 TEXT,
    source              TEXT NOT NULL,
    received_at         BIGINT NOT NULL,
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
    last_interchange BIGINT NOT NULL,
    last_group       BIGINT NOT NULL,
    PRIMARY KEY (sender, receiver, usage)
);
CREATE TABLE x12_allocations (
    seq                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sender              TEXT NOT NULL,
    receiver            TEXT NOT NULL,
    usage               TEXT NOT NULL,
    interchange_control BIGINT NOT NULL,
    group_control       BIGINT NOT NULL,
    delivery_id         TEXT NOT NULL,
    filing_id           TEXT NOT NULL,
    attempt             INTEGER NOT NULL,
    allocated_at        BIGINT NOT NULL
);
CREATE INDEX x12_allocations_group ON x12_allocations (usage, group_control);
CREATE INDEX x12_allocations_interchange ON x12_allocations (usage, interchange_control);
CREATE INDEX x12_allocations_delivery ON x12_allocations (delivery_id);

CREATE TABLE callbacks (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    filing_id    TEXT NOT NULL,
    url          TEXT NOT NULL,
    event        TEXT NOT NULL,
    body         TEXT NOT NULL,
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    available_at BIGINT NOT NULL,
    lease_owner  TEXT,
    lease_token  BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX callbacks_due ON callbacks (available_at)
    WHERE state IN ('pending','waiting_retry','in_flight');
CREATE INDEX callbacks_filing ON callbacks (filing_id, seq);
CREATE INDEX callbacks_owner ON callbacks (lease_owner) WHERE state = 'in_flight';

-- name: migration_6
-- v6 added SQLite's missing claim indexes (deliveries_held, *_owner), which PostgreSQL's v1
-- and v5 already made: nothing to do here but keep the versions in step
SELECT 1;

-- name: migration_7
-- v7 (the lifecycle table): a conflicting ack flags its delivery for a person; a failed
-- breaker probe is counted so the next probe picks another delivery
ALTER TABLE deliveries ADD COLUMN ack_conflict BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN probe_failures INTEGER NOT NULL DEFAULT 0;
CREATE INDEX deliveries_conflict ON deliveries (filing_seq) WHERE ack_conflict;

-- name: migration_8
-- issue 21: operators' pauses of an adapter, a filing type or both (not an outage: nothing
-- is deferred; the claim skips what an active pause names)
CREATE TABLE pauses (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    adapter     TEXT,
    filing_type TEXT,
    reason      TEXT NOT NULL,
    ends_at     BIGINT,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    resumed_at  BIGINT,
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
    archived_at BIGINT NOT NULL,
    purged_at   BIGINT
);
CREATE TABLE record_holds (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    placed_at   BIGINT NOT NULL,
    placed_by   TEXT NOT NULL,
    released_at BIGINT,
    released_by TEXT
);

-- name: migration_10
-- fair delivery between filer codes (issue 22, gateway/rules/fair.py): each delivery's
-- virtual start time and the walk that claims by it; each (adapter, filer code)'s
-- virtual finish; the filers' weights (written by the dispatcher from [fairness]); the
-- unsettled filings by filer code (the quotas' pending count and the queue by filer read
-- only this index)
ALTER TABLE deliveries ADD COLUMN vtime BIGINT NOT NULL DEFAULT 0;
CREATE INDEX deliveries_fair ON deliveries (adapter, vtime, seq)
    WHERE state IN ('pending','waiting_retry','deferred','in_flight');
CREATE TABLE fair_finish (
    adapter    TEXT NOT NULL,
    filer_code TEXT NOT NULL,
    finish     BIGINT NOT NULL,
    PRIMARY KEY (adapter, filer_code)
);
CREATE TABLE fair_weights (
    filer_code TEXT PRIMARY KEY,
    weight     INTEGER NOT NULL
);
CREATE INDEX filings_filer ON filings (status, filer_code);

-- name: migration_11
-- issue 18: a delivery delivered with no ack due (most: an adapter that expects none) no
-- longer enters deliveries_ack_due; both of its queries (sql/postgres/acks.sql) say
-- ack_due_at IS NOT NULL, so they still use it
DROP INDEX deliveries_ack_due;
CREATE INDEX deliveries_ack_due ON deliveries (ack_due_at)
    WHERE state = 'delivered' AND NOT ack_overdue AND ack_due_at IS NOT NULL;

-- name: migration_12
-- issue 18: SQLite's partial indexes on the deliveries' states say them with = and <>
-- (an IN list cost SQLite a throwaway b-tree per row written). PostgreSQL checks an IN
-- predicate without that cost, so its indexes stay as they are: nothing to do here.
SELECT 1;
