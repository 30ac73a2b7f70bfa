-- Operator actions (gateway/store/actions.py): retry, cancel or resend one filing's
-- deliveries, or retry or cancel a bulk chunk's. $1 is now (µs); the state guard is the
-- lifecycle table's source states. A lease kept past a late record (complete.late_sent)
-- is a send in progress while it lasts (status.sending): cancel skips its delivery, retry
-- and resend keep it and its end (the single actions refuse it first,
-- status.refuse_in_flight).
-- Cancelling bumps the lease token, which fences whoever held a lease that ran out.

-- name: operator_retry
UPDATE deliveries SET state = 'pending', attempts = 0, probe_failures = 0,
    available_at = {not_before_lease_end}, last_error = NULL, updated_at = $1
WHERE filing_seq = $2 AND state IN {retry_from} RETURNING id, adapter, ordering_key;

-- name: operator_cancel
UPDATE deliveries SET state = 'cancelled', lease_owner = NULL,
    lease_token = lease_token + 1, updated_at = $1
WHERE filing_seq = $2 AND state IN {cancel_from}
    AND (lease_owner IS NULL OR available_at <= $1) RETURNING id, adapter, ordering_key;

-- name: operator_resend
-- a sent filing again: the ack wait and any conflict flag start afresh
UPDATE deliveries SET state = 'pending', available_at = {not_before_lease_end}, ack_due_at = NULL,
    ack_overdue = FALSE, hold_until_ack = FALSE, ack_conflict = FALSE, updated_at = $1
WHERE filing_seq = $2 AND state IN {resend_from} RETURNING id, adapter, ordering_key;

-- name: bulk_retry
UPDATE deliveries SET state = 'pending', attempts = 0, probe_failures = 0,
    available_at = {not_before_lease_end}, last_error = NULL, updated_at = $1
WHERE id {any_2} AND state IN {retry_from}
RETURNING id, filing_id, filing_seq, adapter, ordering_key;

-- name: bulk_cancel
UPDATE deliveries SET state = 'cancelled', lease_owner = NULL,
    lease_token = lease_token + 1, updated_at = $1
WHERE id {any_2} AND state IN {cancel_from} AND (lease_owner IS NULL OR available_at <= $1)
RETURNING id, filing_id, filing_seq, adapter, ordering_key;
