-- Status callbacks: statements both dialects accept.

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
