-- Outages and deadlines (gateway/store/outages.py). Compare with ../sqlite/outages.sql.

-- name: defer_held
-- one statement: lock the held adapter's due deliveries (skipping any another process
-- is claiming), move them to deferred, report each one's state before
-- ($1 adapter, $2 now, $3 until, $4 reason, $5 environment or NULL for all)
WITH held AS (
    SELECT d.seq, d.state AS was FROM deliveries d
    WHERE d.adapter = $1 AND d.state IN ('pending','waiting_retry','deferred')
      AND d.available_at <= $2
      AND ($5::text IS NULL OR d.filing_seq IN (SELECT seq FROM filings WHERE environment = $5))
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries u SET state = 'deferred', available_at = $3, last_error = $4, updated_at = $2
FROM held WHERE u.seq = held.seq
RETURNING u.id, u.filing_id, u.filing_seq, held.was, u.attempts, u.seq
