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

SQL_LAST_AUDIT = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
SQL_INSERT_AUDIT = "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
SQL_AUDIT_COLS = "seq, at, actor, filing_id, delivery_id, event, details, prev_hash, hash"
