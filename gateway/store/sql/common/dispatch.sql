-- Statements of the dispatch life cycle that both dialects accept ($n placeholders;
-- {fragments} are filled from store/fragments.py).

-- name: finish_delivery
-- settle a claimed delivery, fenced by its lease token
UPDATE deliveries SET state = $1, attempts = attempts + $2, available_at = $3, last_error = $4,
    probe_failures = probe_failures + $5, lease_owner = NULL, updated_at = $6
WHERE id = $7 AND lease_token = $8 AND state = 'in_flight'
RETURNING seq, filing_seq, adapter, ordering_key, attempts;

-- name: block_successors
-- a dead delivery holds back the later deliveries of its ordering key
UPDATE deliveries SET state = 'blocked', updated_at = $1 WHERE adapter = $2
    AND ordering_key = $3 AND seq > $4 AND state IN {block_from}
RETURNING id, filing_id, filing_seq;

-- name: late_sent_row
SELECT seq, filing_seq, adapter, ordering_key, state, attempts, lease_owner, lease_token,
    available_at FROM deliveries
WHERE id = $1{for_update};

-- name: late_sent
-- a send recorded after its lease was lost: delivered. $6: another claim's send is still
-- in progress (its lease is live): its lease stays (owner, token, end in available_at), so
-- the store still knows the send is on the wire; otherwise whoever holds it is fenced off
UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, receipt = $1,
    delivered_at = $2, last_error = NULL, ack_due_at = $3, ack_overdue = FALSE,
    hold_until_ack = $4, ack = NULL, updated_at = $2,
    available_at = CASE WHEN $6 THEN available_at ELSE $2 END,
    lease_owner = CASE WHEN $6 THEN lease_owner ELSE NULL END,
    lease_token = CASE WHEN $6 THEN lease_token ELSE lease_token + 1 END
WHERE seq = $5;

-- name: send_over
-- the send of a lease kept past a late record ended (sent or failed): no send in progress
UPDATE deliveries SET lease_owner = NULL
WHERE id = $1 AND lease_token = $2 AND lease_owner IS NOT NULL AND state <> 'in_flight';

-- name: release_leases
UPDATE deliveries SET state = {released_to},
    lease_owner = NULL, lease_token = lease_token + 1, available_at = $1, updated_at = $1
WHERE lease_owner = $2 AND state = 'in_flight'
RETURNING id, filing_id, filing_seq, adapter, state;

-- name: next_due
-- the first entry of ``deliveries_due`` (SQLite is told so: ``due_index``), not a walk of
-- every claimable delivery; the dispatcher asks after each claim that found nothing
SELECT MIN(available_at) FROM deliveries{due_index} WHERE {state_claimable};

-- name: accept_taken_keys
-- the filings holding idempotency keys an accept found taken
SELECT idempotency_key, id, body_hash FROM filings WHERE idempotency_key {any_1};

-- name: filer_queue
-- the queue by filer code: unsettled filings by filer code and status, from the
-- ``filings_filer`` index alone (issue 22's per-filer views)
SELECT filer_code, status, COUNT(*) FROM filings WHERE status IN {unsettled}
GROUP BY filer_code, status;
