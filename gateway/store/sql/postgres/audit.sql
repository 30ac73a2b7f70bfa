-- The audit chain (gateway/store/trail.py). Compare with ../sqlite/audit.sql.

-- name: audit_insert
-- every row in one statement: one array per column
INSERT INTO audit (seq, at, actor, filing_id, delivery_id, event, details, prev_hash, hash)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::text[])

-- name: audit_first_since
-- ISO strings compared byte-wise: they then sort as times whatever the collation
SELECT MIN(seq) FROM audit WHERE at COLLATE "C" >= $1
