-- Outages: statements both dialects accept.

-- name: outage_insert
INSERT INTO outages (id, adapter, environment, starts_at, ends_at, reason, reference,
    created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: outage_for_removal
SELECT id, adapter, environment, starts_at, ends_at, reason, reference, created_at,
    created_by, removed_at
FROM outages WHERE id = $1{for_update};

-- name: outage_remove
UPDATE outages SET removed_at = $1, removed_by = $2 WHERE id = $3;

-- name: outage_release_adapter
-- what a removed outage deferred may go at once (a gate still closed defers it again)
UPDATE deliveries SET available_at = $1, updated_at = $1
WHERE state = 'deferred' AND available_at > $1 AND adapter = $2;

-- name: outage_release_environment
UPDATE deliveries SET available_at = $1, updated_at = $1
WHERE state = 'deferred' AND available_at > $1
  AND filing_seq IN (SELECT seq FROM filings WHERE environment = $2);

-- name: outages_current
-- the outages not removed and not over at $1, in the order they start
SELECT id, adapter, environment, starts_at, ends_at, reason, reference, created_at,
    created_by, removed_at
FROM outages WHERE removed_at IS NULL AND (ends_at IS NULL OR ends_at > $1)
ORDER BY starts_at, seq;

-- name: outages_all
-- every outage not removed, past ones too
SELECT id, adapter, environment, starts_at, ends_at, reason, reference, created_at,
    created_by, removed_at
FROM outages WHERE removed_at IS NULL
ORDER BY starts_at, seq;
