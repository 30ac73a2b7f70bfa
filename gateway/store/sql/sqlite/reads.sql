-- Filing reads and queue statistics (gateway/store/reads.py). Compare with ../postgres/reads.sql.

-- name: deliveries_in_conflict
-- the partial index deliveries_conflict (v7): ack_conflict is a 0/1 INTEGER here
SELECT COUNT(*) FROM deliveries WHERE ack_conflict = 1
