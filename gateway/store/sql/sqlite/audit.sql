-- The audit chain (gateway/store/trail.py). Compare with ../postgres/audit.sql.

-- name: audit_insert
-- one row per parameter tuple (executemany)
INSERT INTO audit (seq, at, actor, filing_id, delivery_id, event, details, prev_hash, hash)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: audit_first_since
SELECT MIN(seq) FROM audit WHERE at >= ?1
