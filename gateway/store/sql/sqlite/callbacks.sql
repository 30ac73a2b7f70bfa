-- Status callbacks: the claim (gateway/store/callbacks.py; the rest are in
-- ../common/callbacks.sql). Compare with ../postgres/callbacks.sql.

-- name: callback_claim
-- the head event of each filing (no earlier event of it still open), leased; the CTE's
-- column is renamed: SQLite's RETURNING takes only the target's bare column names, which
-- on PostgreSQL must then not collide with the CTE's. The open events are read through
-- ``callbacks_due`` (told so: without ANALYZE statistics the planner walked every event
-- ever queued, in seq order, to find the open ones on each poll), then sorted by seq.
WITH heads AS (
    SELECT c.seq AS head FROM callbacks c INDEXED BY callbacks_due
    WHERE c.state IN {callback_open} AND c.available_at <= ?1
      AND NOT EXISTS (
        SELECT 1 FROM callbacks p
        WHERE p.filing_id = c.filing_id AND p.seq < c.seq AND p.state IN {callback_open})
    ORDER BY c.seq LIMIT ?2
)
UPDATE callbacks AS u SET state = 'in_flight', lease_owner = ?3,
    lease_token = u.lease_token + 1, available_at = ?4, updated_at = ?1
FROM heads WHERE u.seq = heads.head
RETURNING seq, id, filing_id, url, body, attempts, lease_token, created_at;
