-- The records archive (gateway/store/archive.py, issue 20): the mover's batch read, the
-- check-and-delete that enters a segment, restore, holds and the segment list. Each
-- archive_rows_* query's column list is also the key list of the archived row dicts.

-- name: archive_candidates
-- finished filings whose last change is older than $1, after seq $2 (walks filings_status);
-- the stamp is (filing updated_at, newest delivery updated_at)
SELECT f.seq, f.id, f.filing_type, f.environment, f.reference, f.filer_code, f.received_at,
    f.updated_at, (SELECT MAX(d.updated_at) FROM deliveries d WHERE d.filing_seq = f.seq)
FROM filings f WHERE f.status IN {settled} AND f.updated_at <= $1 AND f.seq > $2
ORDER BY f.seq LIMIT $3;

-- name: archive_rows_filings
SELECT seq, id, filing_type, environment, reference, filer_code, idempotency_key, body_hash,
    ordering_key, due_by, content_type, payload, payload_is_json, callback_url, metadata,
    source, received_at, status, updated_at, at_risk_at, source_event_id
FROM filings WHERE seq {any_1} ORDER BY seq;

-- name: archive_rows_deliveries
SELECT seq, id, filing_seq, filing_id, adapter, ordering_key, state, attempts, available_at,
    due_by, lease_owner, lease_token, last_error, receipt, created_at, updated_at,
    delivered_at, ack_due_at, ack_overdue, hold_until_ack, ack, ack_conflict, probe_failures
FROM deliveries WHERE filing_seq {any_1} ORDER BY seq;

-- name: archive_rows_acks
SELECT seq, id, fingerprint, kind, outcome, unsolicited, codes, message, document, raw,
    source, received_at, matched_delivery_id, matched_filing_id, effect
FROM acks WHERE matched_filing_id {any_1} ORDER BY seq;

-- name: archive_rows_callbacks
SELECT seq, id, filing_id, url, event, body, state, attempts, available_at, lease_owner,
    lease_token, last_error, created_at, updated_at, delivered_at
FROM callbacks WHERE filing_id {any_1} ORDER BY seq;

-- name: archive_rows_x12_allocations
SELECT seq, sender, receiver, usage, interchange_control, group_control, delivery_id,
    filing_id, attempt, allocated_at
FROM x12_allocations WHERE delivery_id {any_1} ORDER BY seq;

-- name: archive_rows_audit
SELECT seq, at, actor, filing_id, delivery_id, event, details, prev_hash, hash
FROM audit WHERE filing_id {any_1} ORDER BY seq;

-- name: archive_lock_filings
SELECT seq, id, updated_at FROM filings WHERE seq {any_1}{for_update};

-- name: archive_lock_deliveries
SELECT filing_seq, id, updated_at FROM deliveries WHERE filing_seq {any_1}{for_update};

-- name: archive_delete_x12_allocations
DELETE FROM x12_allocations WHERE delivery_id {any_1};

-- name: archive_delete_acks
DELETE FROM acks WHERE matched_filing_id {any_1};

-- name: archive_delete_callbacks
DELETE FROM callbacks WHERE filing_id {any_1};

-- name: archive_delete_deliveries
DELETE FROM deliveries WHERE filing_seq {any_1};

-- name: archive_delete_audit
-- the archived filings' audit rows (by seq: only those the segment holds), while
-- audit_prune_guard lets a DELETE through the append-only trigger
DELETE FROM audit WHERE seq {any_1};

-- name: archive_continues_from
-- audit prune's anchor: row $1's hash, read in the row after it when $1 was archived (the
-- cut is always just before a live row, or at the head)
SELECT COALESCE((SELECT hash FROM audit WHERE seq = $1),
    (SELECT prev_hash FROM audit WHERE seq > $1 ORDER BY seq LIMIT 1));

-- name: archive_pruned_to
-- the newest audit.pruned anchor's details (removed_to_seq): archived rows below are gone
SELECT details FROM audit WHERE event = 'audit.pruned' ORDER BY seq DESC LIMIT 1;

-- name: archive_delete_filings
DELETE FROM filings WHERE seq {any_1};

-- name: archive_segment_insert
INSERT INTO record_segments (name, sha256, records, first_id, last_id, archived_at)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: archive_segments
SELECT name, sha256, records, first_id, last_id, archived_at, purged_at
FROM record_segments ORDER BY name;

-- name: archive_segment_purged
UPDATE record_segments SET purged_at = $2 WHERE name = $1 AND purged_at IS NULL;

-- name: archive_live_ids
SELECT id, seq FROM filings WHERE id {any_1};

-- name: archive_live_references
-- the spellings of live references that read as $1 to the index (upper case, no spaces or
-- hyphens): a records search by reference then lists each by the reference index
SELECT DISTINCT reference FROM filings
WHERE upper(replace(replace(reference, ' ', ''), '-', '')) = $1 LIMIT 100;

-- name: hold_insert
INSERT INTO record_holds (id, kind, value, reason, placed_at, placed_by)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: hold_release
UPDATE record_holds SET released_at = $2, released_by = $3
WHERE id = $1 AND released_at IS NULL RETURNING kind, value;

-- name: holds_all
SELECT id, kind, value, reason, placed_at, placed_by, released_at, released_by
FROM record_holds ORDER BY placed_at, id;
