-- The dashboard's charts (gateway/store/series.py): per-minute figures read from the
-- timestamps the store keeps anyway, through the filings_received index.

-- name: series_accepted
-- filings accepted per minute since $1 (µs): a range of filings_received, grouped
SELECT received_at / 60000000 AS minute, COUNT(*)
FROM filings WHERE received_at >= $1
GROUP BY received_at / 60000000

-- name: series_delivered
-- deliveries made since $2 of filings accepted since $1: filings_received, then each
-- filing's deliveries by deliveries_filing (deliveries.delivered_at has no index)
SELECT d.delivered_at, f.received_at
FROM filings f JOIN deliveries d ON d.filing_seq = f.seq
WHERE f.received_at >= $1 AND d.delivered_at >= $2
