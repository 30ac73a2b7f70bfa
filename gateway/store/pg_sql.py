"""The named queries of ``postgres.py`` (the schema is ``sql/postgres/migrations.sql``).

Cross-process coordination uses transaction-scoped advisory locks in two namespaces
(the two-int form, so they never collide with anyone else's; ``schema.LOCK_MIGRATE`` is
``('edgw', 2)`` in the first):

* ``LOCK_AUDIT`` serializes audit appends — every transaction that writes audit rows
  takes it just before reading the chain head and holds it until commit, so rows from
  all processes form one chain;
* ``LOCK_ORDER`` + ``hashtext(ordering_key)`` serializes the transactions that insert
  deliveries of one ordering key (or block/unblock them), so a key's delivery ``seq``
  order is its commit order (see ``accept``).
"""

from __future__ import annotations

from gateway.store import logic

LOCK_AUDIT = (0x6564_6777, 1)  # 'edgw', 1
LOCK_ORDER_NS = 0x6564_6778

#: the channel a new filing (or an operator retry, or released leases) is announced on
CHANNEL = "edigw_new_work"

CLAIMABLE = "('pending','waiting_retry','deferred','in_flight')"
DONE = "('delivered','acknowledged','cancelled')"
SETTLED = "('delivered','acknowledged','cancelled','dead','rejected')"
#: claim order: earliest due_by first (none last), then acceptance order; the same
#: expression as the claim index's second column, so the planner can walk it
DUE_KEY = "coalesce(due_by, 9223372036854775807)"

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
