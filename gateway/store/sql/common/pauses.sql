-- Pauses (gateway/store/outages.py): statements both dialects accept.

-- name: pause_insert
INSERT INTO pauses (id, adapter, filing_type, reason, ends_at, created_at, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: pauses_unresumed
-- every pause not resumed yet (an expired one included: the guard resumes it, audited)
SELECT id, adapter, filing_type, reason, ends_at, created_at, created_by, resumed_at,
    resumed_by FROM pauses WHERE resumed_at IS NULL ORDER BY seq;

-- name: pauses_all
SELECT id, adapter, filing_type, reason, ends_at, created_at, created_by, resumed_at,
    resumed_by FROM pauses ORDER BY seq;

-- name: pause_for_resume
SELECT id, adapter, filing_type, reason, ends_at, created_at, created_by, resumed_at,
    resumed_by FROM pauses WHERE id = $1{for_update};

-- name: pause_resume
UPDATE pauses SET resumed_at = $1, resumed_by = $2 WHERE id = $3 AND resumed_at IS NULL;

-- name: pauses_expire
-- pauses whose end time has come: resumed at that time, by the gateway (once, whichever
-- process gets here first: the row lock makes a concurrent UPDATE re-check resumed_at)
UPDATE pauses SET resumed_at = ends_at, resumed_by = 'system'
WHERE resumed_at IS NULL AND ends_at IS NOT NULL AND ends_at <= $1
RETURNING id, adapter, filing_type, reason, ends_at, created_at, created_by, resumed_at,
    resumed_by;
