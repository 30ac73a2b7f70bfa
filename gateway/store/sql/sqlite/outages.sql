-- Outages and deadlines (gateway/store/outages.py). Compare with ../postgres/outages.sql.

-- name: defer_held
-- the held adapter's due deliveries with their state before; SQLite's RETURNING sees
-- only the updated row, so they are read here and moved by defer_held_move (one writer:
-- nothing moves in between). ?3 and ?4 are defer_held_move's.
SELECT id, filing_id, filing_seq, state, attempts, seq FROM deliveries
WHERE adapter = ?1 AND state IN ('pending','waiting_retry','deferred') AND available_at <= ?2
  AND (?5 IS NULL OR filing_seq IN (SELECT seq FROM filings WHERE environment = ?5))

-- name: defer_held_move
-- one row per (until, reason, now, seq) tuple (executemany)
UPDATE deliveries SET state = 'deferred', available_at = ?1, last_error = ?2, updated_at = ?3
WHERE seq = ?4
