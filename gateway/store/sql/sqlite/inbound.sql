-- Rejected inbound events (gateway/store/inbound.py). Compare with ../postgres/inbound.sql.

-- name: rejected_insert
-- kept once per (source, event id): a redelivered message inserts nothing
INSERT INTO rejected_events
    (id, source, origin, event_id, reason, details, body, content_type, received_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
ON CONFLICT DO NOTHING
RETURNING seq
