"""The named queries of ``postgres.py`` (the schema is ``sql/postgres/migrations.sql``).

Cross-process coordination uses transaction-scoped advisory locks in two namespaces
(the two-int form, so they never collide with anyone else's; ``schema.LOCK_MIGRATE`` is
``('edgw', 2)`` in the first):

* ``LOCK_AUDIT`` serializes audit appends — every transaction that writes audit rows
  takes it just before reading the chain head and holds it until commit, so rows from
  all processes form one chain;
* ``LOCK_ORDER`` + ``hashtext(ordering_key)`` serializes the transactions that insert
  deliveries of one ordering key (or block/unblock them), so a key's delivery ``seq``
  order is its commit order (see ``pg_ops.accept``).
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

#: every filing of a (coalesced) accept, in order: identity values follow ORDER BY ord, and
#: a repeated idempotency key is skipped after its first row, as one INSERT each would be
INSERT_FILINGS = """
INSERT INTO filings (id, filing_type, environment, reference, filer_code, idempotency_key,
    body_hash, ordering_key, due_by, content_type, payload, payload_is_json, callback_url,
    metadata, source, received_at, status, updated_at, source_event_id)
SELECT v.id, v.filing_type, v.environment, v.reference, v.filer_code, v.idempotency_key,
    v.body_hash, v.ordering_key, v.due_by, v.content_type, v.payload, v.payload_is_json,
    v.callback_url, v.metadata, v.source, v.received_at, 'pending', v.updated_at,
    v.source_event_id
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::bigint[], $10::text[], $11::text[], $12::smallint[],
    $13::text[], $14::text[], $15::text[], $16::bigint[], $17::bigint[], $18::text[])
    WITH ORDINALITY AS v(id, filing_type, environment, reference, filer_code,
        idempotency_key, body_hash, ordering_key, due_by, content_type, payload,
        payload_is_json, callback_url, metadata, source, received_at, updated_at,
        source_event_id, ord)
ORDER BY v.ord
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id, seq
"""
INSERT_DELIVERIES = """
INSERT INTO deliveries (id, filing_seq, filing_id, adapter, ordering_key, state,
    available_at, due_by, created_at, updated_at)
SELECT v.id, v.filing_seq, v.filing_id, v.adapter, v.ordering_key,
    CASE WHEN EXISTS (
        SELECT 1 FROM deliveries b WHERE b.adapter = v.adapter
        AND b.ordering_key = v.ordering_key AND b.state IN ('dead','rejected','blocked'))
    THEN 'blocked' ELSE 'pending' END,
    v.at, v.due_by, v.at, v.at
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[],
    $7::bigint[]) WITH ORDINALITY AS v(id, filing_seq, filing_id, adapter, ordering_key, at,
    due_by, ord)
ORDER BY v.ord
RETURNING id, state
"""
FILING_BY_KEY = "SELECT id, body_hash FROM filings WHERE idempotency_key = $1"
LOCK_KEYS = f"""
SELECT pg_advisory_xact_lock({LOCK_ORDER_NS}, k)
FROM (SELECT DISTINCT hashtext(x) AS k FROM unnest($1::text[]) AS x ORDER BY 1) AS keys
"""

# Claims: only the *head* of an (adapter, ordering_key) group is a candidate — the
# NOT EXISTS finds no earlier delivery of the group that is not done — and the head row
# is locked FOR UPDATE SKIP LOCKED, so two processes claiming at once never take the
# same head, and neither can take a successor: a successor only becomes a head when
# its predecessor is done (delivered/acknowledged/cancelled), a terminal state that
# is committed before any snapshot can see it. A successor is never eligible while
# its head is pending or in flight, whatever the other process has locked. The order
# (earliest due_by, then acceptance) only chooses among heads, so it cannot break this.
CLAIM = f"""
WITH heads AS (
    SELECT d.seq, d.state AS was, d.filing_seq FROM deliveries d
    WHERE d.adapter = $1 AND d.state IN {CLAIMABLE} AND d.available_at <= $2
      -- v5: a delivered predecessor held until its ack still holds the key
      AND NOT EXISTS (
        SELECT 1 FROM deliveries h
        WHERE h.adapter = d.adapter AND h.ordering_key = d.ordering_key AND h.seq < d.seq
          AND h.state = 'delivered' AND h.hold_until_ack)
      AND NOT EXISTS (
        SELECT 1 FROM deliveries e
        WHERE e.adapter = d.adapter AND e.ordering_key = d.ordering_key AND e.seq < d.seq
          AND e.state NOT IN {DONE})
      -- a delivery made live again (a resend, a resubmit ack) waits for a later one of its
      -- key that is being sent: at most one in flight per (ordering key, adapter)
      AND NOT EXISTS (
        SELECT 1 FROM deliveries l
        WHERE l.adapter = d.adapter AND l.ordering_key = d.ordering_key AND l.seq > d.seq
          AND l.state = 'in_flight')
    ORDER BY {DUE_KEY.replace("due_by", "d.due_by")}, d.seq LIMIT $3
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries u SET state = 'in_flight', lease_owner = $4,
    lease_token = u.lease_token + 1, available_at = $5, updated_at = $2
FROM heads JOIN filings f ON f.seq = heads.filing_seq
-- the ANY gives the planner an index condition on u: joined on heads alone it hashed
-- a sequential scan of the whole table (10 ms at 20k rows)
WHERE u.seq = heads.seq AND u.seq = ANY (ARRAY(SELECT seq FROM heads))
RETURNING u.id, u.adapter, u.lease_token, u.attempts, u.filing_seq, u.filing_id, heads.was,
    u.seq, {DUE_KEY.replace("due_by", "u.due_by")} AS due_key, u.probe_failures, {F_COLS}
"""
#: a breaker probe: deliveries that never failed a probe first (rare: one row at a time)
CLAIM_PROBE = CLAIM.replace("    ORDER BY ", "    ORDER BY d.probe_failures, ", 1)
RENEW = """
UPDATE deliveries SET available_at = $1
WHERE id = ANY($2::text[]) AND lease_owner = $3 AND state = 'in_flight'
  AND lease_token = ($4::bigint[])[array_position($2::text[], id)]
"""
FINISH = """
UPDATE deliveries SET state = $1, attempts = attempts + $2, available_at = $3, last_error = $4,
    receipt = COALESCE($5, receipt), delivered_at = COALESCE($6, delivered_at),
    lease_owner = NULL, updated_at = $7
WHERE id = $8 AND lease_token = $9 AND state = 'in_flight'
RETURNING seq, filing_seq, adapter, ordering_key, attempts
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
RELEASE = f"""
UPDATE deliveries SET state = '{logic.RELEASED_TO}',
    lease_owner = NULL, lease_token = lease_token + 1, available_at = $1, updated_at = $1
WHERE lease_owner = $2 AND state = 'in_flight'
RETURNING id, filing_id, filing_seq, adapter, state
"""
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
NEXT_DUE = f"SELECT MIN(available_at) FROM deliveries WHERE state IN {CLAIMABLE}"
