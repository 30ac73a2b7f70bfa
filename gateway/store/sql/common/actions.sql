-- Operator actions (gateway/store/actions.py): retry, cancel or resend one filing's
-- deliveries, or retry or cancel a bulk chunk's. $1 is now (µs); the state guard is the
-- lifecycle table's source states.
-- Cancelling bumps the lease token, which fences whoever holds an in-flight delivery.

-- name: operator_retry
UPDATE deliveries SET state = 'pending', attempts = 0, probe_failures = 0, available_at = $1,
    last_error = NULL, lease_owner = NULL, updated_at = $1
WHERE filing_seq = $2 AND state IN {retry_from} RETURNING id, adapter, ordering_key;

-- name: operator_cancel
UPDATE deliveries SET state = 'cancelled', lease_owner = NULL,
    lease_token = lease_token + 1, updated_at = $1
WHERE filing_seq = $2 AND state IN {cancel_from} RETURNING id, adapter, ordering_key;

-- name: operator_resend
-- a sent filing again: the ack wait and any conflict flag start afresh
UPDATE deliveries SET state = 'pending', available_at = $1, ack_due_at = NULL,
    ack_overdue = FALSE, hold_until_ack = FALSE, ack_conflict = FALSE, lease_owner = NULL,
    updated_at = $1
WHERE filing_seq = $2 AND state IN {resend_from} RETURNING id, adapter, ordering_key;

-- name: bulk_retry
UPDATE deliveries SET state = 'pending', attempts = 0, probe_failures = 0, available_at = $1,
    last_error = NULL, lease_owner = NULL, updated_at = $1
WHERE id {any_2} AND state IN {retry_from}
RETURNING id, filing_id, filing_seq, adapter, ordering_key;

-- name: bulk_cancel
UPDATE deliveries SET state = 'cancelled', lease_owner = NULL,
    lease_token = lease_token + 1, updated_at = $1
WHERE id {any_2} AND state IN {cancel_from}
RETURNING id, filing_id, filing_seq, adapter, ordering_key;
