-- Status callbacks: statements both dialects accept.

-- name: callback_claim
-- the head event of each filing (no earlier event of it still open), leased; the CTE's
-- column is renamed: SQLite's RETURNING takes only the target's bare column names, which
-- on PostgreSQL must then not collide with the CTE's
WITH heads AS (
    SELECT c.seq AS head FROM callbacks c
    WHERE c.state IN {callback_open} AND c.available_at <= $1
      AND NOT EXISTS (
        SELECT 1 FROM callbacks p
        WHERE p.filing_id = c.filing_id AND p.seq < c.seq AND p.state IN {callback_open})
    ORDER BY c.seq LIMIT $2{skip_locked}
)
UPDATE callbacks AS u SET state = 'in_flight', lease_owner = $3,
    lease_token = u.lease_token + 1, available_at = $4, updated_at = $1
FROM heads WHERE u.seq = heads.head
RETURNING seq, id, filing_id, url, body, attempts, lease_token, created_at;

-- name: callback_finish
-- fenced by the lease token
UPDATE callbacks SET state = $1, attempts = attempts + 1, available_at = $2,
    last_error = $3, lease_owner = NULL, updated_at = $4,
    delivered_at = CASE WHEN $1 = 'delivered' THEN $4 ELSE delivered_at END
WHERE id = $5 AND lease_token = $6 AND state = 'in_flight'
RETURNING attempts, event;

-- name: callback_release
UPDATE callbacks SET state = CASE WHEN attempts = 0 THEN 'pending' ELSE 'waiting_retry' END,
    lease_owner = NULL, lease_token = lease_token + 1, available_at = $1, updated_at = $1
WHERE lease_owner = $2 AND state = 'in_flight';

-- name: callback_next_due
SELECT MIN(available_at) FROM callbacks WHERE state IN {callback_open};

-- name: callback_states
SELECT id, state FROM callbacks WHERE id {any_1};

-- name: callback_retry
UPDATE callbacks SET state = CASE WHEN attempts = 0 THEN 'pending' ELSE 'waiting_retry' END,
    available_at = $1, lease_owner = NULL, updated_at = $1
WHERE seq {any_2};
