-- Acknowledgements and X12 control numbers: statements both dialects accept.

-- name: ack_target_by_id
SELECT d.seq, d.id, d.filing_id, d.filing_seq, d.adapter, d.ordering_key, d.state,
    d.attempts, f.received_at FROM deliveries d JOIN filings f ON f.seq = d.filing_seq
WHERE d.id = $1;

-- name: ack_target_waiting_by_reference
-- the oldest delivery of a reference still waiting for its answer
SELECT d.seq, d.id, d.filing_id, d.filing_seq, d.adapter, d.ordering_key, d.state,
    d.attempts, f.received_at FROM deliveries d JOIN filings f ON f.seq = d.filing_seq
WHERE f.reference = $1 AND f.filing_type = $2 AND d.state = 'delivered'
ORDER BY d.seq LIMIT 1;

-- name: ack_target_latest_by_reference
SELECT d.seq, d.id, d.filing_id, d.filing_seq, d.adapter, d.ordering_key, d.state,
    d.attempts, f.received_at FROM deliveries d JOIN filings f ON f.seq = d.filing_seq
WHERE f.reference = $1 AND f.filing_type = $2
ORDER BY d.seq DESC LIMIT 1;

-- name: ack_unsolicited_filing
SELECT id FROM filings WHERE reference = $1 AND filing_type = $2 ORDER BY seq DESC LIMIT 1;

-- name: ack_by_fingerprint
SELECT id, document, raw, matched_delivery_id, matched_filing_id, effect
FROM acks WHERE fingerprint = $1;

-- name: ack_insert
INSERT INTO acks (id, fingerprint, kind, outcome, unsolicited, codes, message, document, raw,
    source, received_at, matched_delivery_id, matched_filing_id, effect)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (fingerprint) DO NOTHING
RETURNING seq;

-- name: ack_flag_conflict
UPDATE deliveries SET ack_conflict = TRUE, updated_at = $1 WHERE id = $2;

-- name: ack_apply
UPDATE deliveries SET state = $1, ack = $2, ack_overdue = FALSE, hold_until_ack = FALSE,
    ack_due_at = CASE WHEN $3 THEN NULL ELSE ack_due_at END,
    -- a resend waits for a send still in progress (a lease kept: status.sending)
    available_at = CASE WHEN lease_owner IS NOT NULL AND available_at > $4 THEN available_at
        ELSE COALESCE($4, available_at) END, last_error = COALESCE($5, last_error),
    updated_at = $6
WHERE seq = $7;

-- name: close_ack
UPDATE deliveries SET ack_due_at = NULL, ack_overdue = FALSE, hold_until_ack = FALSE,
    ack = CASE WHEN state = 'delivered' THEN $1 ELSE ack END, ack_conflict = FALSE,
    updated_at = $2
WHERE filing_seq = $3
  AND (state = 'delivered' OR (ack_conflict AND state IN {close_conflict}))
RETURNING id, adapter, state;

-- name: x12_allocate
-- the next interchange and group control numbers, wrapping after the top
INSERT INTO x12_counters AS c VALUES ($1, $2, $3, 1, 1)
ON CONFLICT (sender, receiver, usage) DO UPDATE SET
    last_interchange = CASE WHEN c.last_interchange >= {top_control} THEN 1
                            ELSE c.last_interchange + 1 END,
    last_group = CASE WHEN c.last_group >= {top_control} THEN 1 ELSE c.last_group + 1 END
RETURNING last_interchange, last_group;

-- name: x12_record_allocation
INSERT INTO x12_allocations (sender, receiver, usage, interchange_control, group_control,
    delivery_id, filing_id, attempt, allocated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);
