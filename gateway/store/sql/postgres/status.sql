-- Filing statuses (gateway/store/status.py). Compare with ../sqlite/status.sql.

-- name: set_statuses
-- every filing in one statement: $1 a jsonb array of (status, at, seq) ("table")
UPDATE filings f SET status = r->>0, updated_at = (r->>1)::bigint
FROM jsonb_array_elements($1::jsonb) AS r WHERE f.seq = (r->>2)::bigint
    -- the seqs again, as an array: keeps the planner on the primary key whatever it expects
    -- of jsonb_array_elements (100 rows)
    AND f.seq = ANY (ARRAY(SELECT (x->>2)::bigint FROM jsonb_array_elements($1::jsonb) AS x))
