-- Filing statuses (gateway/store/status.py). Compare with ../sqlite/status.sql.

-- name: set_statuses
-- every filing in one statement: one array per column
UPDATE filings f SET status = v.status, updated_at = v.at
FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS v(status, at, seq) WHERE f.seq = v.seq
