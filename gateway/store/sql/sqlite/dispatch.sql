-- The dispatch life cycle (gateway/store/accept.py, gateway/store/dispatch.py).
-- Compare with ../postgres/dispatch.sql. One statement per row (the writer thread runs
-- them back to back, in one transaction).

-- name: accept_filings
-- one filing; a taken idempotency key (by an earlier row or an earlier item) inserts nothing
INSERT INTO filings (id, filing_type, environment, reference, filer_code, idempotency_key,
    body_hash, ordering_key, due_by, content_type, payload, payload_is_json, callback_url,
    metadata, source, received_at, status, updated_at, source_event_id)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, 'pending',
    ?17, ?18)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id, seq

-- name: accept_deliveries
-- one delivery, ``blocked`` when its key already has a dead, rejected or blocked delivery
-- for its adapter (the three <> are the ``deliveries_order`` index's WHERE)
INSERT INTO deliveries (id, filing_seq, filing_id, adapter, ordering_key, state,
    available_at, due_by, created_at, updated_at, vtime)
VALUES (?1, ?2, ?3, ?4, ?5,
    CASE WHEN EXISTS (
        SELECT 1 FROM deliveries b WHERE b.adapter = ?4 AND b.ordering_key = ?5
        AND b.state <> 'delivered' AND b.state <> 'acknowledged' AND b.state <> 'cancelled'
        AND (b.state = 'dead' OR b.state = 'rejected' OR b.state = 'blocked'))
    THEN 'blocked' ELSE 'pending' END,
    ?6, ?7, ?6, ?6, ?8)
RETURNING id, state

-- name: fair_state
-- one (adapter, filer code) of an accept: the adapter's virtual clock (the head tag
-- waiting: the first entry of ``deliveries_fair``; when none waits, the largest finish on
-- it: coalesce stops at the first value), the filer's finish and weight
SELECT ?1, ?2,
    coalesce((SELECT d.vtime FROM deliveries d WHERE d.adapter = ?1
        AND (d.state = 'pending' OR d.state = 'waiting_retry' OR d.state = 'deferred'
            OR d.state = 'in_flight')
        ORDER BY d.vtime, d.seq LIMIT 1),
        (SELECT max(c.finish) FROM fair_finish c WHERE c.adapter = ?1)),
    (SELECT c.finish FROM fair_finish c WHERE c.adapter = ?1 AND c.filer_code = ?2),
    (SELECT w.weight FROM fair_weights w WHERE w.filer_code = ?2)

-- name: fair_finish
-- one (adapter, filer code, finish): a finish only ever moves forward
INSERT INTO fair_finish (adapter, filer_code, finish) VALUES (?1, ?2, ?3)
ON CONFLICT (adapter, filer_code) DO UPDATE SET finish = max(finish, excluded.finish)

-- name: claim
-- ?1 adapter, ?2 now, ?3 limit: the heads of their ordering keys, in fair order (their
-- virtual start times, gateway/rules/fair.py, then acceptance: ``deliveries_fair`` is on
-- exactly these columns, so SQLite walks it instead of sorting), with their filings.
-- Only selects them: SQLite's RETURNING sees neither a row's old state nor a joined
-- table, so ``dispatch.claim`` takes them next (one writer: nobody takes them in between, and each token is the one read + 1).
-- The predecessor check is two NOT EXISTS, each matching a partial index's WHERE exactly
-- (``deliveries_order``, ``deliveries_held``): written as one ``... OR ...`` it matched
-- neither, and SQLite walked every earlier delivery for every candidate (quadratic in the
-- table's size). A third NOT EXISTS keeps a delivery made live again (an operator's resend,
-- a resubmit ack) behind a later one of its key that is being sent: one in flight per key
-- and adapter.
SELECT d.id, d.adapter, d.lease_token + 1, d.attempts, d.filing_seq, d.filing_id, d.state,
    d.seq, coalesce(d.due_by, 9223372036854775807) AS due_key, d.probe_failures,
    {f_cols}
FROM deliveries d JOIN filings f ON f.seq = d.filing_seq
WHERE d.adapter = ?1
  AND (d.state = 'pending' OR d.state = 'waiting_retry' OR d.state = 'deferred'
    OR d.state = 'in_flight')
  AND d.available_at <= ?2
  -- ?4: filing types paused or held on this adapter (issue 21, a JSON list), ?5: filer
  -- codes out of delivery tokens (issue 22, rules/pacing.py, a JSON list); NULL for none
  AND (?4 IS NULL OR f.filing_type NOT IN (SELECT value FROM json_each(?4)))
  AND (?5 IS NULL OR f.filer_code NOT IN (SELECT value FROM json_each(?5)))
  AND NOT EXISTS (
    SELECT 1 FROM deliveries e
    WHERE e.adapter = d.adapter AND e.ordering_key = d.ordering_key AND e.seq < d.seq
      AND e.state <> 'delivered' AND e.state <> 'acknowledged'
      AND e.state <> 'cancelled')
  AND NOT EXISTS (
    SELECT 1 FROM deliveries h
    WHERE h.adapter = d.adapter AND h.ordering_key = d.ordering_key AND h.seq < d.seq
      AND h.state = 'delivered' AND h.hold_until_ack = 1)
  AND NOT EXISTS (
    SELECT 1 FROM deliveries l
    WHERE l.adapter = d.adapter AND l.ordering_key = d.ordering_key AND l.seq > d.seq
      AND l.state <> 'delivered' AND l.state <> 'acknowledged'
      AND l.state <> 'cancelled' AND l.state = 'in_flight')
  -- with filers left out (?5), the walk stops at the largest finish of the others
  -- (rules/fair.py: each delivery's tag is below its filer's finish), not at the end of
  -- the left-out filers' backlog when fewer than ?3 others wait
  AND d.vtime < (CASE WHEN ?5 IS NULL THEN 9223372036854775807 ELSE (
    SELECT coalesce(max(c.finish), 9223372036854775807) FROM fair_finish c
    WHERE c.adapter = ?1 AND c.filer_code NOT IN (SELECT value FROM json_each(?5))) END)
ORDER BY d.vtime, d.seq LIMIT ?3

-- name: claim_due
-- ``claim``'s deadline walk, run before it: heads due by ?6 (now + the horizon), earliest
-- due_by first, then acceptance (``deliveries_claim`` is on exactly this expression, so
-- SQLite walks its range and stops at LIMIT); the rest as ``claim``.
SELECT d.id, d.adapter, d.lease_token + 1, d.attempts, d.filing_seq, d.filing_id, d.state,
    d.seq, coalesce(d.due_by, 9223372036854775807) AS due_key, d.probe_failures,
    {f_cols}
FROM deliveries d JOIN filings f ON f.seq = d.filing_seq
WHERE d.adapter = ?1
  AND (d.state = 'pending' OR d.state = 'waiting_retry' OR d.state = 'deferred'
    OR d.state = 'in_flight')
  AND d.available_at <= ?2
  AND coalesce(d.due_by, 9223372036854775807) <= ?6
  -- ?4: filing types paused or held on this adapter (issue 21, a JSON list), ?5: filer
  -- codes out of delivery tokens (issue 22, rules/pacing.py, a JSON list); NULL for none
  AND (?4 IS NULL OR f.filing_type NOT IN (SELECT value FROM json_each(?4)))
  AND (?5 IS NULL OR f.filer_code NOT IN (SELECT value FROM json_each(?5)))
  AND NOT EXISTS (
    SELECT 1 FROM deliveries e
    WHERE e.adapter = d.adapter AND e.ordering_key = d.ordering_key AND e.seq < d.seq
      AND e.state <> 'delivered' AND e.state <> 'acknowledged'
      AND e.state <> 'cancelled')
  AND NOT EXISTS (
    SELECT 1 FROM deliveries h
    WHERE h.adapter = d.adapter AND h.ordering_key = d.ordering_key AND h.seq < d.seq
      AND h.state = 'delivered' AND h.hold_until_ack = 1)
  AND NOT EXISTS (
    SELECT 1 FROM deliveries l
    WHERE l.adapter = d.adapter AND l.ordering_key = d.ordering_key AND l.seq > d.seq
      AND l.state <> 'delivered' AND l.state <> 'acknowledged'
      AND l.state <> 'cancelled' AND l.state = 'in_flight')
ORDER BY coalesce(d.due_by, 9223372036854775807), d.seq LIMIT ?3

-- name: claim_probe
-- a breaker probe: ``claim``, deliveries that never failed a probe first (rare: one row
-- at a time)
SELECT d.id, d.adapter, d.lease_token + 1, d.attempts, d.filing_seq, d.filing_id, d.state,
    d.seq, coalesce(d.due_by, 9223372036854775807) AS due_key, d.probe_failures,
    {f_cols}
FROM deliveries d JOIN filings f ON f.seq = d.filing_seq
WHERE d.adapter = ?1
  AND (d.state = 'pending' OR d.state = 'waiting_retry' OR d.state = 'deferred'
    OR d.state = 'in_flight')
  AND d.available_at <= ?2
  -- ?4: filing types paused or held on this adapter (issue 21, a JSON list), ?5: filer
  -- codes out of delivery tokens (issue 22, rules/pacing.py, a JSON list); NULL for none
  AND (?4 IS NULL OR f.filing_type NOT IN (SELECT value FROM json_each(?4)))
  AND (?5 IS NULL OR f.filer_code NOT IN (SELECT value FROM json_each(?5)))
  AND NOT EXISTS (
    SELECT 1 FROM deliveries e
    WHERE e.adapter = d.adapter AND e.ordering_key = d.ordering_key AND e.seq < d.seq
      AND e.state <> 'delivered' AND e.state <> 'acknowledged'
      AND e.state <> 'cancelled')
  AND NOT EXISTS (
    SELECT 1 FROM deliveries h
    WHERE h.adapter = d.adapter AND h.ordering_key = d.ordering_key AND h.seq < d.seq
      AND h.state = 'delivered' AND h.hold_until_ack = 1)
  AND NOT EXISTS (
    SELECT 1 FROM deliveries l
    WHERE l.adapter = d.adapter AND l.ordering_key = d.ordering_key AND l.seq > d.seq
      AND l.state <> 'delivered' AND l.state <> 'acknowledged'
      AND l.state <> 'cancelled' AND l.state = 'in_flight')
ORDER BY d.probe_failures, coalesce(d.due_by, 9223372036854775807), d.seq LIMIT ?3

-- name: renew
-- one (lease end, delivery id, owner, token) row (executemany); a lease kept past a late
-- record (not in flight: complete.late_sent) is renewed too, its end never moved earlier
UPDATE deliveries SET available_at = CASE WHEN state = 'in_flight' THEN ?1
    ELSE max(available_at, ?1) END
WHERE id = ?2 AND lease_token = ?4 AND lease_owner = ?3

-- name: complete_sent
-- one completion, fenced by its lease token: (delivery id, token, at, receipt, ack due at,
-- hold the key until acked)
UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, available_at = ?3,
    last_error = NULL, receipt = ?4, delivered_at = ?3, lease_owner = NULL,
    updated_at = ?3, ack_due_at = ?5, ack_overdue = 0, hold_until_ack = ?6, ack = NULL
WHERE id = ?1 AND lease_token = ?2 AND state = 'in_flight'
RETURNING id, lease_token, filing_seq, adapter, attempts

-- name: claim_take
-- the selected heads go in flight (PostgreSQL's claim selects and takes in one statement)
UPDATE deliveries SET state = 'in_flight', lease_owner = $1, lease_token = lease_token + 1,
    available_at = $2, updated_at = $3 WHERE seq IN (SELECT value FROM json_each($4));

-- name: fair_weights_set
-- one (filer code, weight) of ``[fairness] weights``, read by every accept's ``fair_state``
INSERT INTO fair_weights (filer_code, weight) VALUES (?1, ?2)
