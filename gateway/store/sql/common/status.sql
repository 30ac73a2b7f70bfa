-- Filing statuses, callbacks queued by a status change, and the ordering-key helpers.

-- name: status_filings_locked
SELECT seq, status, callback_url FROM filings WHERE seq {any_1} ORDER BY seq{for_update};

-- name: status_delivery_states
SELECT filing_seq, state FROM deliveries WHERE filing_seq {any_1};

-- name: callback_filing
SELECT id, filing_type, environment, reference, callback_url FROM filings WHERE seq = $1;

-- name: callback_deliveries
SELECT id, adapter, state, ack FROM deliveries WHERE filing_seq = $1 ORDER BY seq;

-- name: callback_enqueue
INSERT INTO callbacks (id, filing_id, url, event, body, state, available_at, created_at,
    updated_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6, $6);

-- name: reblock_key
-- a key's deliveries that may still hold their successors back, in order
SELECT seq, id, filing_id, filing_seq, state FROM deliveries
WHERE adapter = $1 AND ordering_key = $2 AND {holds_key} ORDER BY seq;

-- name: reblock_set
UPDATE deliveries SET state = $1, available_at = $2, updated_at = $2 WHERE seq = $3;

-- name: filing_seq_key
SELECT seq, ordering_key FROM filings WHERE id = $1;

-- name: filing_delivery_states
SELECT id, state, available_at, lease_owner FROM deliveries WHERE filing_seq = $1;
