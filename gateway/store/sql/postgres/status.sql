-- Filing statuses (gateway/store/status.py). Compare with ../sqlite/status.sql.

-- name: set_statuses
-- every filing in one statement: $1 a jsonb array of (status, at, seq) ("table")
-- (the LIMIT of every row tells the planner how many: it expects 100 of jsonb_array_elements)
UPDATE filings f SET status = v.status, updated_at = v.at
FROM (SELECT r->>0 AS status, (r->>1)::bigint AS at, (r->>2)::bigint AS seq
    FROM jsonb_array_elements($1::jsonb) AS r LIMIT jsonb_array_length($1::jsonb)) AS v
WHERE f.seq = v.seq
