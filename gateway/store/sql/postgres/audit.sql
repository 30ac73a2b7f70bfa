-- The audit chain (gateway/store/trail.py). Compare with ../sqlite/audit.sql.

-- name: audit_insert
-- every row in one statement: $1 is a JSON array of rows, each an array of the nine
-- columns in this order (``sansio``'s "table" request; nine arrays cost the client more)
INSERT INTO audit (seq, at, actor, filing_id, delivery_id, event, details, prev_hash, hash)
SELECT (r->>0)::bigint, r->>1, r->>2, r->>3, r->>4, r->>5, r->>6, r->>7, r->>8
FROM jsonb_array_elements($1::jsonb) AS r

-- name: audit_first_since
-- ISO strings compared byte-wise: they then sort as times whatever the collation
SELECT MIN(seq) FROM audit WHERE at COLLATE "C" >= $1
