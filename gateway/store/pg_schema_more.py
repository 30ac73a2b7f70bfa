"""PostgreSQL schema v4 (inbound: rejected events) and v5 (acks, X12 control numbers,
callbacks), the same tables as SQLite's migrations 4 and 5.

Kept apart from ``pg_sql`` so the v2/v3 port merges cleanly; ``pg_sql.MIGRATIONS``
appends these. They depend on v1 objects only (no ``filings.at_risk_at``).
Times are BIGINT microseconds; flags are BOOLEAN (``rows.delivery`` takes ``bool()``).
"""

from __future__ import annotations

V4_INBOUND = """
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
"""

V5_ACKS = """
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
"""

#: v6 added SQLite's missing claim indexes (``deliveries_held``, ``*_owner``), which
#: PostgreSQL's v1 and v5 already made: nothing to do here but keep the versions in step
V6_CLAIM_INDEXES = "SELECT 1;"

#: v7 (the lifecycle table): a conflicting ack flags its delivery for a person; a failed
#: breaker probe is counted so the next probe picks another delivery
V7_LIFECYCLE = """
ALTER TABLE deliveries ADD COLUMN ack_conflict BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN probe_failures INTEGER NOT NULL DEFAULT 0;
CREATE INDEX deliveries_conflict ON deliveries (filing_seq) WHERE ack_conflict;
"""

MIGRATIONS: list[tuple[int, str]] = [
    (4, V4_INBOUND),
    (5, V5_ACKS),
    (6, V6_CLAIM_INDEXES),
    (7, V7_LIFECYCLE),
]
