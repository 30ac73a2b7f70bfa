"""The column lists and the named SQL the SQLite transaction bodies share (``sqlite_ops``,
``sqlite_reads``, ``sqlite_audit``). The schema itself is ``sql/sqlite/migrations.sql``.
"""

from __future__ import annotations

CLAIMABLE = ("pending", "waiting_retry", "deferred", "in_flight")
CLAIMABLE_SQL = "('pending','waiting_retry','deferred','in_flight')"
DONE_SQL = "('delivered','acknowledged','cancelled')"
#: claim order: earliest due_by first (none last), then acceptance order; the claim index
#: is on exactly this expression so SQLite walks it instead of sorting
DUE_KEY = "coalesce(due_by, 9223372036854775807)"
SETTLED_SQL = "('delivered','acknowledged','cancelled','dead','rejected')"

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

#: the heads of their ordering keys, in claim order. The predecessor check is two NOT
#: EXISTS, each matching a partial index's WHERE exactly (``deliveries_order``,
#: ``deliveries_held``): written as one ``... OR ...`` it matched neither, and SQLite
#: walked every earlier delivery for every candidate (quadratic in the table's size).
#: A third NOT EXISTS keeps a delivery made live again (an operator's resend, a resubmit
#: ack) behind a later one of its key that is being sent: one in flight per key and adapter
SQL_CLAIM_CANDIDATES = f"""
SELECT d.seq, d.id, d.state, d.attempts, d.filing_seq, d.probe_failures FROM deliveries d
WHERE d.adapter = ? AND d.state IN {CLAIMABLE_SQL} AND d.available_at <= ?
  AND NOT EXISTS (
    SELECT 1 FROM deliveries e
    WHERE e.adapter = d.adapter AND e.ordering_key = d.ordering_key AND e.seq < d.seq
      AND e.state NOT IN {DONE_SQL})
  AND NOT EXISTS (
    SELECT 1 FROM deliveries h
    WHERE h.adapter = d.adapter AND h.ordering_key = d.ordering_key AND h.seq < d.seq
      AND h.state = 'delivered' AND h.hold_until_ack = 1)
  AND NOT EXISTS (
    SELECT 1 FROM deliveries l
    WHERE l.adapter = d.adapter AND l.ordering_key = d.ordering_key AND l.seq > d.seq
      AND l.state NOT IN {DONE_SQL} AND l.state = 'in_flight')
ORDER BY {DUE_KEY.replace("due_by", "d.due_by")}, d.seq LIMIT ?
"""
#: a breaker probe: deliveries that never failed a probe first (rare: one row at a time)
SQL_CLAIM_PROBE = SQL_CLAIM_CANDIDATES.replace("ORDER BY ", "ORDER BY d.probe_failures, ")
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

#: is an earlier delivery of this (adapter, ordering key) dead, rejected or blocked?
SQL_BLOCKED_BEHIND = (
    "SELECT 1 FROM deliveries WHERE adapter = ? AND ordering_key = ? "
    f"AND state NOT IN {DONE_SQL} AND state IN ('dead','rejected','blocked') LIMIT 1"
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
SQL_TAKE_MANY = """
UPDATE deliveries SET state = 'in_flight', lease_owner = ?, lease_token = lease_token + 1,
    available_at = ?, updated_at = ?
WHERE seq IN ({marks}) RETURNING seq, lease_token
"""
