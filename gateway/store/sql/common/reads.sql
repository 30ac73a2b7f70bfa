-- Filing reads and queue statistics (gateway/store/reads.py), written once for both dialects.

-- name: filing_by_id
SELECT {f_cols} FROM filings f WHERE f.id = $1;

-- name: filings_by_ids
SELECT {f_cols} FROM filings f WHERE f.id {any_1};

-- name: deliveries_of_filing
SELECT {d_cols} FROM deliveries d WHERE d.filing_seq = $1 ORDER BY d.seq;

-- name: deliveries_of_filings
SELECT {d_cols} FROM deliveries d WHERE d.filing_seq {any_1} ORDER BY d.seq;

-- name: stats_by_state
-- walks the covering index ``deliveries_state``
SELECT state, adapter, COUNT(*) FROM deliveries GROUP BY state, adapter;

-- name: stats_oldest_waiting
-- reads only claimable rows (PostgreSQL: the partial index ``deliveries_due``; SQLite:
-- ``deliveries_state``, state by state)
SELECT adapter, MIN(created_at) FROM deliveries WHERE {state_claimable} GROUP BY adapter;

-- name: stats_at_risk
-- reads only unsettled filings (``filings_status``)
SELECT COUNT(*) FROM filings WHERE status IN {unsettled} AND at_risk_at IS NOT NULL;

-- name: open_filings
-- filings accepted and not settled, by filer code: the unsettled rows of filings_status
SELECT filer_code, COUNT(*) FROM filings WHERE status IN {unsettled} GROUP BY filer_code;
