"""The PostgreSQL schema (versioned migrations) and the named queries of ``postgres.py``.

Times are BIGINT microseconds since the epoch, as on SQLite, so ``rows.py`` converts
rows of both backends. Cross-process coordination uses transaction-scoped advisory
locks in two namespaces (the two-int form, so they never collide with anyone else's):

* ``LOCK_AUDIT`` serializes audit appends — every transaction that writes audit rows
  takes it just before reading the chain head and holds it until commit, so rows from
  all processes form one chain;
* ``LOCK_ORDER`` + ``hashtext(ordering_key)`` serializes the transactions that insert
  deliveries of one ordering key (or block/unblock them), so a key's delivery ``seq``
  order is its commit order (see ``accept``).
"""

from __future__ import annotations

from gateway.store import logic, pg_schema_more

LOCK_AUDIT = (0x6564_6777, 1)  # 'edgw', 1
LOCK_ORDER_NS = 0x6564_6778
LOCK_MIGRATE = (0x6564_6777, 2)

#: the channel a new filing (or an operator retry, or released leases) is announced on
CHANNEL = "edigw_new_work"

CLAIMABLE = "('pending','waiting_retry','deferred','in_flight')"
DONE = "('delivered','acknowledged','cancelled')"
SETTLED = "('delivered','acknowledged','cancelled','dead','rejected')"
#: claim order: earliest due_by first (none last), then acceptance order; the same
#: expression as the claim index's second column, so the planner can walk it
DUE_KEY = "coalesce(due_by, 9223372036854775807)"

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        f"""
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
CREATE INDEX deliveries_claim ON deliveries (adapter, seq) WHERE state IN {CLAIMABLE};
CREATE INDEX deliveries_due ON deliveries (available_at) WHERE state IN {CLAIMABLE};
CREATE INDEX deliveries_order ON deliveries (adapter, ordering_key, seq)
    WHERE state NOT IN {DONE};
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
""",
    ),
    (
        2,
        # Pruning (sqlite's migration 2): DELETE is let through only while the guard
        # table holds its one row, which ``pg_audit.prune`` inserts and removes inside its
        # own transaction, so no other transaction ever sees it. The guard is looked up in
        # the audit table's own schema (TG_TABLE_SCHEMA), not through search_path, so a
        # temporary table of the same name cannot open the gate. UPDATE and TRUNCATE stay
        # refused unconditionally. ``at`` is compared byte-wise (COLLATE "C"): ISO strings
        # then sort as times whatever the database's collation.
        """
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
""",
    ),
    (
        3,
        # Outages and deadlines (sqlite's migration 3). The claim index becomes
        # (adapter, DUE_KEY, seq) over claimable rows: CLAIM orders by exactly that, so
        # the planner walks one adapter's slice in claim order and stops at LIMIT instead
        # of sorting every claimable row; ``available_at <= now`` and the head check are
        # filters along the walk. When most claimable rows are not yet due (a long
        # outage deferring thousands), ``deliveries_due`` on available_at is the cheaper
        # path and the planner may take it: both stay.
        f"""
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
CREATE INDEX deliveries_claim ON deliveries (adapter, {DUE_KEY}, seq)
    WHERE state IN {CLAIMABLE};
""",
    ),
]
# v4 (inbound) and v5 (acks, callbacks) live in pg_schema_more; applied in list order
MIGRATIONS += pg_schema_more.MIGRATIONS

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
A_COLS = "seq, at, actor, filing_id, delivery_id, event, details, prev_hash, hash"

LOCK_KEYS = f"""
SELECT pg_advisory_xact_lock({LOCK_ORDER_NS}, k)
FROM (SELECT DISTINCT hashtext(x) AS k FROM unnest($1::text[]) AS x ORDER BY 1) AS keys
"""

BLOCK_SUCCESSORS = f"""
UPDATE deliveries SET state = 'blocked', updated_at = $1 WHERE adapter = $2
    AND ordering_key = $3 AND seq > $4 AND state IN {logic.BLOCK_FROM_SQL}
RETURNING id, filing_id, filing_seq
"""
KEY_ROWS = f"""
SELECT seq, id, filing_id, filing_seq, state FROM deliveries
WHERE adapter = $1 AND ordering_key = $2 AND state NOT IN {DONE} ORDER BY seq
"""
SET_STATE = "UPDATE deliveries SET state = $1, available_at = $2, updated_at = $2 WHERE seq = $3"
RETRY = f"""
UPDATE deliveries SET state = 'pending', attempts = 0, probe_failures = 0, available_at = $1,
    last_error = NULL, lease_owner = NULL, updated_at = $1
WHERE filing_seq = $2 AND state IN {logic.RETRY_FROM_SQL} RETURNING id, adapter, ordering_key
"""
CANCEL = f"""
UPDATE deliveries SET state = 'cancelled', lease_owner = NULL, lease_token = lease_token + 1,
    updated_at = $1
WHERE filing_seq = $2 AND state IN {logic.CANCEL_FROM_SQL}
RETURNING id, adapter, ordering_key
"""
FILING_DELIVERIES = "SELECT id, state, available_at FROM deliveries WHERE filing_seq = $1"
FILING_STATES = (
    "SELECT filing_seq, array_agg(state) FROM deliveries WHERE filing_seq = ANY($1::bigint[]) "
    "GROUP BY filing_seq"
)
LOCK_FILINGS = (
    "SELECT seq, status, callback_url FROM filings WHERE seq = ANY($1::bigint[]) "
    "ORDER BY seq FOR UPDATE"
)
SET_STATUSES = """
UPDATE filings f SET status = v.status, updated_at = v.at
FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS v(status, at, seq) WHERE f.seq = v.seq
"""
AUDIT_HEAD = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
AUDIT_FIRST_SINCE = 'SELECT MIN(seq) FROM audit WHERE at COLLATE "C" >= $1'
INSERT_AUDIT_ROWS = """
INSERT INTO audit (seq, at, actor, filing_id, delivery_id, event, details, prev_hash, hash)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::text[])
"""
COUNTS = "SELECT adapter, state, COUNT(*) FROM deliveries GROUP BY adapter, state"
