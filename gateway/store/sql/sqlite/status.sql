-- Filing statuses (gateway/store/status.py). Compare with ../postgres/status.sql.

-- name: set_statuses
-- one row per (status, at, seq) tuple (executemany)
UPDATE filings SET status = ?1, updated_at = ?2 WHERE seq = ?3
