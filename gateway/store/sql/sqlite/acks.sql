-- Acknowledgements, ack deadlines, X12 control numbers (gateway/store/acks.py).
-- Compare with ../postgres/acks.sql.

-- name: ack_target_lock
-- one writer: the row cannot change under us, nothing to lock
SELECT d.seq, d.id, d.filing_id, d.filing_seq, d.adapter, d.ordering_key, d.state,
    d.attempts, f.received_at
FROM deliveries d JOIN filings f ON f.seq = d.filing_seq
WHERE d.seq = ?1

-- name: flag_overdue
-- ack_overdue = 0: the partial index deliveries_ack_due's own predicate
UPDATE deliveries SET ack_overdue = 1, updated_at = ?1
WHERE state = 'delivered' AND ack_overdue = 0 AND ack_due_at IS NOT NULL AND ack_due_at <= ?1
RETURNING id, filing_id, adapter, ack_due_at

-- name: extend_ack_deadlines
UPDATE deliveries SET ack_due_at = ack_due_at + ?1
WHERE adapter = ?2 AND state = 'delivered' AND ack_overdue = 0 AND ack_due_at IS NOT NULL

-- name: x12_lease_fence
-- one writer: no reclaim can run until this transaction commits
SELECT 1 FROM deliveries WHERE id = ?1 AND lease_token = ?2 AND state = 'in_flight'
