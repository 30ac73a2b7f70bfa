-- Filing reads and queue statistics (gateway/store/reads.py). Compare with ../sqlite/reads.sql.

-- name: deliveries_in_conflict
-- the partial index deliveries_conflict (v7): ack_conflict is a BOOLEAN here
SELECT COUNT(*) FROM deliveries WHERE ack_conflict
