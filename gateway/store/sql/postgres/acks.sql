-- Acknowledgements, ack deadlines, X12 control numbers (gateway/store/acks.py).
-- Compare with ../sqlite/acks.sql.

-- name: ack_target_lock
-- the delivery an ack answers, re-read under its row lock (only the delivery row: the
-- filing row is locked later, in seq order, by refresh_statuses)
SELECT d.seq, d.id, d.filing_id, d.filing_seq, d.adapter, d.ordering_key, d.state,
    d.attempts, f.received_at
FROM deliveries d JOIN filings f ON f.seq = d.filing_seq
WHERE d.seq = $1
FOR UPDATE OF d

-- name: flag_overdue
-- NOT ack_overdue: the partial index deliveries_ack_due's own predicate
UPDATE deliveries SET ack_overdue = TRUE, updated_at = $1
WHERE state = 'delivered' AND NOT ack_overdue AND ack_due_at IS NOT NULL AND ack_due_at <= $1
RETURNING id, filing_id, adapter, ack_due_at

-- name: extend_ack_deadlines
UPDATE deliveries SET ack_due_at = ack_due_at + $1
WHERE adapter = $2 AND state = 'delivered' AND NOT ack_overdue AND ack_due_at IS NOT NULL

-- name: x12_lease_fence
-- a share lock on the delivery row at the claim's token: a reclaim waits for this commit
SELECT 1 FROM deliveries WHERE id = $1 AND lease_token = $2 AND state = 'in_flight' FOR SHARE
