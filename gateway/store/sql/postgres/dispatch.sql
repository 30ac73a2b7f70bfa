-- The dispatch life cycle (gateway/store/accept.py, gateway/store/dispatch.py).
-- Compare with ../sqlite/dispatch.sql. Arrays: one per column, one statement for a batch
-- (the largest: one jsonb array of row arrays, ``sansio``'s "table" requests).

-- name: accept_filings
-- every filing of a (coalesced) accept, in order: identity values follow ORDER BY ord, and
-- a repeated idempotency key is skipped after its first row, as one INSERT each would be.
-- First (the one-time filter) the ordering keys' locks, as ``LockKeys`` takes them
-- (namespace ``sansio.LOCK_ORDER_NS``, in hashtext order): one round trip fewer
WITH locks AS (SELECT pg_advisory_xact_lock(1701078904, k) FROM (SELECT DISTINCT
    hashtext(r->>7) AS k FROM jsonb_array_elements($1::jsonb) AS r ORDER BY 1) AS keys)
INSERT INTO filings (id, filing_type, environment, reference, filer_code, idempotency_key,
    body_hash, ordering_key, due_by, content_type, payload, payload_is_json, callback_url,
    metadata, source, received_at, status, updated_at, source_event_id)
SELECT v.id, v.filing_type, v.environment, v.reference, v.filer_code, v.idempotency_key,
    v.body_hash, v.ordering_key, v.due_by, v.content_type, v.payload, v.payload_is_json,
    v.callback_url, v.metadata, v.source, v.received_at, 'pending', v.updated_at,
    v.source_event_id
FROM (SELECT r->>0 AS id, r->>1 AS filing_type, r->>2 AS environment, r->>3 AS reference,
    r->>4 AS filer_code, r->>5 AS idempotency_key, r->>6 AS body_hash, r->>7 AS ordering_key,
    (r->>8)::bigint AS due_by, r->>9 AS content_type, r->>10 AS payload,
    (r->>11)::smallint AS payload_is_json, r->>12 AS callback_url, r->>13 AS metadata,
    r->>14 AS source, (r->>15)::bigint AS received_at, (r->>16)::bigint AS updated_at,
    r->>17 AS source_event_id, ord
    FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(r, ord)) AS v
WHERE (SELECT count(*) FROM locks) > 0
ORDER BY v.ord
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id, seq

-- name: accept_deliveries
-- every new delivery, in order; ``blocked`` when its key already has a dead, rejected or
-- blocked delivery for its adapter. Rows inserted by this same statement are not seen by
-- that check, and need not be: they are pending or blocked by an older row. The check is
-- a scalar subquery, looked up per row on the key's index: an EXISTS over jsonb rows (100
-- expected) is planned as one hash of every dead, rejected and blocked delivery
INSERT INTO deliveries (id, filing_seq, filing_id, adapter, ordering_key, state,
    available_at, due_by, created_at, updated_at, vtime)
SELECT v.id, v.filing_seq, v.filing_id, v.adapter, v.ordering_key,
    CASE WHEN (
        SELECT 1 FROM deliveries b WHERE b.adapter = v.adapter
        AND b.ordering_key = v.ordering_key AND b.state IN ('dead','rejected','blocked')
        LIMIT 1) IS NOT NULL
    THEN 'blocked' ELSE 'pending' END,
    v.at, v.due_by, v.at, v.at, v.vtime
FROM (SELECT r->>0 AS id, (r->>1)::bigint AS filing_seq, r->>2 AS filing_id, r->>3 AS adapter,
    r->>4 AS ordering_key, (r->>5)::bigint AS at, (r->>6)::bigint AS due_by,
    (r->>7)::bigint AS vtime, ord
    FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(r, ord)) AS v
ORDER BY v.ord
RETURNING id, state

-- name: fair_state
-- every (adapter, filer code) of an accept: the adapter's virtual clock (the head tag
-- waiting: the first entry of ``deliveries_fair``; when none waits, the largest finish on
-- it: coalesce stops at the first value), the filer's finish and weight (rules/fair.py)
SELECT p.adapter, p.filer_code,
    coalesce((SELECT d.vtime FROM deliveries d WHERE d.adapter = p.adapter
        AND d.state IN ('pending','waiting_retry','deferred','in_flight')
        ORDER BY d.vtime, d.seq LIMIT 1),
        (SELECT max(c.finish) FROM fair_finish c WHERE c.adapter = p.adapter)),
    (SELECT c.finish FROM fair_finish c WHERE c.adapter = p.adapter
        AND c.filer_code = p.filer_code),
    (SELECT w.weight FROM fair_weights w WHERE w.filer_code = p.filer_code)
FROM unnest($1::text[], $2::text[]) AS p(adapter, filer_code)

-- name: fair_finish
-- rows of (adapter, filer code, finish), in key order: a finish only ever moves forward
INSERT INTO fair_finish (adapter, filer_code, finish)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) AS v(a, f, finish) ORDER BY 1, 2
ON CONFLICT (adapter, filer_code)
DO UPDATE SET finish = greatest(fair_finish.finish, excluded.finish)

-- name: claim
-- $1 adapter, $2 now, $3 limit, $4 owner, $5 lease end. Selects, locks and takes the heads
-- in one statement. Only the *head* of an (adapter, ordering_key) group is a candidate —
-- the NOT EXISTS finds no earlier delivery of the group that is not done — and the head
-- row is locked FOR UPDATE SKIP LOCKED, so two processes claiming at once never take the
-- same head, and neither can take a successor: a successor only becomes a head when its
-- predecessor is done (delivered/acknowledged/cancelled), a terminal state that is
-- committed before any snapshot can see it. A successor is never eligible while its head
-- is pending or in flight, whatever the other process has locked. The order (the virtual
-- start times of gateway/rules/fair.py, then acceptance: ``deliveries_fair``'s columns, so
-- the planner walks it and stops at LIMIT) only chooses among heads, so it cannot break
-- this.
WITH heads AS (
    SELECT d.seq, d.state AS was, d.filing_seq FROM deliveries d
    WHERE d.adapter = $1 AND d.state IN ('pending','waiting_retry','deferred','in_flight')
      AND d.available_at <= $2
      -- $6: filing types paused or held on this adapter (issue 21), NULL for none
      AND ($6::text[] IS NULL OR NOT EXISTS (SELECT 1 FROM filings p
        WHERE p.seq = d.filing_seq AND p.filing_type = ANY ($6::text[])))
      -- $7: filer codes out of delivery tokens (issue 22, rules/pacing.py), NULL for none.
      -- A scalar subquery: one probe of the filing's key per candidate walked (as NOT
      -- EXISTS it was planned as a hashed scan of every filing, per claim)
      AND ($7::text[] IS NULL
        OR (SELECT p.filer_code FROM filings p WHERE p.seq = d.filing_seq) <> ALL ($7::text[]))
      -- v5: a delivered predecessor held until its ack still holds the key
      AND NOT EXISTS (
        SELECT 1 FROM deliveries h
        WHERE h.adapter = d.adapter AND h.ordering_key = d.ordering_key AND h.seq < d.seq
          AND h.state = 'delivered' AND h.hold_until_ack)
      AND NOT EXISTS (
        SELECT 1 FROM deliveries e
        WHERE e.adapter = d.adapter AND e.ordering_key = d.ordering_key AND e.seq < d.seq
          AND e.state NOT IN ('delivered','acknowledged','cancelled'))
      -- a delivery made live again (a resend, a resubmit ack) waits for a later one of its
      -- key that is being sent: at most one in flight per (ordering key, adapter)
      AND NOT EXISTS (
        SELECT 1 FROM deliveries l
        WHERE l.adapter = d.adapter AND l.ordering_key = d.ordering_key AND l.seq > d.seq
          AND l.state = 'in_flight')
      -- with filers left out ($7), the walk stops at the largest finish of the others
      -- (rules/fair.py: each delivery's tag is below its filer's finish), not at the end
      -- of the left-out filers' backlog when fewer than $3 others wait
      AND d.vtime < (CASE WHEN $7::text[] IS NULL THEN 9223372036854775807 ELSE (
        SELECT coalesce(max(c.finish), 9223372036854775807) FROM fair_finish c
        WHERE c.adapter = $1 AND c.filer_code <> ALL ($7::text[])) END)
    ORDER BY d.vtime, d.seq LIMIT $3
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries u SET state = 'in_flight', lease_owner = $4,
    lease_token = u.lease_token + 1, available_at = $5, updated_at = $2
FROM heads JOIN filings f ON f.seq = heads.filing_seq
-- the ANY gives the planner an index condition on u: joined on heads alone it hashed
-- a sequential scan of the whole table (10 ms at 20k rows)
WHERE u.seq = heads.seq AND u.seq = ANY (ARRAY(SELECT seq FROM heads))
RETURNING u.id, u.adapter, u.lease_token, u.attempts, u.filing_seq, u.filing_id, heads.was,
    u.seq, coalesce(u.due_by, 9223372036854775807) AS due_key, u.probe_failures,
    {f_cols}

-- name: claim_due
-- ``claim``'s deadline walk, run before it: heads due by $8 (now + the horizon), earliest
-- due_by first, then acceptance (``deliveries_claim``'s columns: the planner walks its
-- range and stops at LIMIT); the rest as ``claim``.
WITH heads AS (
    SELECT d.seq, d.state AS was, d.filing_seq FROM deliveries d
    WHERE d.adapter = $1 AND d.state IN ('pending','waiting_retry','deferred','in_flight')
      AND d.available_at <= $2
      AND coalesce(d.due_by, 9223372036854775807) <= $8
      -- $6: filing types paused or held on this adapter (issue 21), NULL for none
      AND ($6::text[] IS NULL OR NOT EXISTS (SELECT 1 FROM filings p
        WHERE p.seq = d.filing_seq AND p.filing_type = ANY ($6::text[])))
      -- $7: filer codes out of delivery tokens (issue 22, rules/pacing.py), NULL for none.
      -- A scalar subquery: one probe of the filing's key per candidate walked (as NOT
      -- EXISTS it was planned as a hashed scan of every filing, per claim)
      AND ($7::text[] IS NULL
        OR (SELECT p.filer_code FROM filings p WHERE p.seq = d.filing_seq) <> ALL ($7::text[]))
      -- v5: a delivered predecessor held until its ack still holds the key
      AND NOT EXISTS (
        SELECT 1 FROM deliveries h
        WHERE h.adapter = d.adapter AND h.ordering_key = d.ordering_key AND h.seq < d.seq
          AND h.state = 'delivered' AND h.hold_until_ack)
      AND NOT EXISTS (
        SELECT 1 FROM deliveries e
        WHERE e.adapter = d.adapter AND e.ordering_key = d.ordering_key AND e.seq < d.seq
          AND e.state NOT IN ('delivered','acknowledged','cancelled'))
      -- a delivery made live again (a resend, a resubmit ack) waits for a later one of its
      -- key that is being sent: at most one in flight per (ordering key, adapter)
      AND NOT EXISTS (
        SELECT 1 FROM deliveries l
        WHERE l.adapter = d.adapter AND l.ordering_key = d.ordering_key AND l.seq > d.seq
          AND l.state = 'in_flight')
    ORDER BY coalesce(d.due_by, 9223372036854775807), d.seq LIMIT $3
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries u SET state = 'in_flight', lease_owner = $4,
    lease_token = u.lease_token + 1, available_at = $5, updated_at = $2
FROM heads JOIN filings f ON f.seq = heads.filing_seq
-- the ANY gives the planner an index condition on u: joined on heads alone it hashed
-- a sequential scan of the whole table (10 ms at 20k rows)
WHERE u.seq = heads.seq AND u.seq = ANY (ARRAY(SELECT seq FROM heads))
RETURNING u.id, u.adapter, u.lease_token, u.attempts, u.filing_seq, u.filing_id, heads.was,
    u.seq, coalesce(u.due_by, 9223372036854775807) AS due_key, u.probe_failures,
    {f_cols}

-- name: claim_probe
-- a breaker probe: ``claim``, deliveries that never failed a probe first (rare: one row
-- at a time)
WITH heads AS (
    SELECT d.seq, d.state AS was, d.filing_seq FROM deliveries d
    WHERE d.adapter = $1 AND d.state IN ('pending','waiting_retry','deferred','in_flight')
      AND d.available_at <= $2
      -- $6: filing types paused or held on this adapter (issue 21), NULL for none
      AND ($6::text[] IS NULL OR NOT EXISTS (SELECT 1 FROM filings p
        WHERE p.seq = d.filing_seq AND p.filing_type = ANY ($6::text[])))
      -- $7: filer codes out of delivery tokens (issue 22, rules/pacing.py), NULL for none.
      -- A scalar subquery: one probe of the filing's key per candidate walked (as NOT
      -- EXISTS it was planned as a hashed scan of every filing, per claim)
      AND ($7::text[] IS NULL
        OR (SELECT p.filer_code FROM filings p WHERE p.seq = d.filing_seq) <> ALL ($7::text[]))
      AND NOT EXISTS (
        SELECT 1 FROM deliveries h
        WHERE h.adapter = d.adapter AND h.ordering_key = d.ordering_key AND h.seq < d.seq
          AND h.state = 'delivered' AND h.hold_until_ack)
      AND NOT EXISTS (
        SELECT 1 FROM deliveries e
        WHERE e.adapter = d.adapter AND e.ordering_key = d.ordering_key AND e.seq < d.seq
          AND e.state NOT IN ('delivered','acknowledged','cancelled'))
      AND NOT EXISTS (
        SELECT 1 FROM deliveries l
        WHERE l.adapter = d.adapter AND l.ordering_key = d.ordering_key AND l.seq > d.seq
          AND l.state = 'in_flight')
    ORDER BY d.probe_failures, coalesce(d.due_by, 9223372036854775807), d.seq LIMIT $3
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries u SET state = 'in_flight', lease_owner = $4,
    lease_token = u.lease_token + 1, available_at = $5, updated_at = $2
FROM heads JOIN filings f ON f.seq = heads.filing_seq
WHERE u.seq = heads.seq AND u.seq = ANY (ARRAY(SELECT seq FROM heads))
RETURNING u.id, u.adapter, u.lease_token, u.attempts, u.filing_seq, u.filing_id, heads.was,
    u.seq, coalesce(u.due_by, 9223372036854775807) AS due_key, u.probe_failures,
    {f_cols}

-- name: claim_untake
-- $2 seqs, $3 the states they were in: heads a claim took beyond a filer's delivery rate
-- (dispatch.claim), back as they were in the same transaction, claimable at $1
UPDATE deliveries d SET state = v.was, lease_owner = NULL, available_at = $1
FROM unnest($2::bigint[], $3::text[]) AS v(seq, was) WHERE d.seq = v.seq

-- name: renew
-- rows of (lease end, delivery id, owner, token): leases still held get the new end; a
-- lease kept past a late record (not in flight: complete.late_sent) too, never earlier
UPDATE deliveries d SET available_at = CASE WHEN d.state = 'in_flight' THEN v.until
    ELSE greatest(d.available_at, v.until) END
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[]) AS v(until, id, owner, token)
WHERE d.id = v.id AND d.lease_token = v.token AND d.lease_owner = v.owner

-- name: complete_sent
-- many completions at once, each fenced by its own lease token: rows of (delivery id,
-- token, at, receipt, ack due at, hold the key until acked)
UPDATE deliveries d SET state = 'delivered', attempts = d.attempts + 1, available_at = v.at,
    last_error = NULL, receipt = v.receipt, delivered_at = v.at, lease_owner = NULL,
    updated_at = v.at, ack_due_at = v.ack_due_at, ack_overdue = FALSE,
    hold_until_ack = v.hold, ack = NULL
FROM (SELECT r->>0 AS id, (r->>1)::bigint AS token, (r->>2)::bigint AS at, r->>3 AS receipt,
    (r->>4)::bigint AS ack_due_at, (r->>5)::boolean AS hold
    -- a LIMIT of every row tells the planner how many (it expects 100 of
    -- jsonb_array_elements, and then hashed every in-flight delivery for a few rows)
    FROM jsonb_array_elements($1::jsonb) AS r LIMIT jsonb_array_length($1::jsonb)) AS v
WHERE d.id = v.id AND d.lease_token = v.token AND d.state = 'in_flight'
RETURNING d.id, v.token, d.filing_seq, d.adapter, d.attempts

-- name: fair_weights_set
-- rows of (filer code, weight): ``[fairness] weights``, read by every accept's ``fair_state``
INSERT INTO fair_weights (filer_code, weight) SELECT * FROM unnest($1::text[], $2::int[])
