-- X12 control-number gaps (gateway/store/x12gaps.py): statements both dialects accept,
-- but for the JSON accessors ({x12_*}, ``fragments``). {{where}}, {{kinds}} and {{limit}}
-- are filled at run time with the report's filters and their $n placeholders; the
-- x12_classified head is prefixed to x12_groups and to x12_gaps.

-- name: x12_classified
WITH alloc AS MATERIALIZED (
  SELECT a.seq, a.sender, a.receiver, a.usage, a.interchange_control, a.group_control,
         a.delivery_id, a.filing_id, a.attempt, a.allocated_at,
         d.state AS delivery_state, d.attempts AS delivery_attempts,
         EXISTS (SELECT 1 FROM audit u
                 WHERE u.filing_id = a.filing_id AND u.delivery_id = a.delivery_id
                   AND u.event IN ('delivery.sent', 'delivery.sent_again')
                   AND {x12_sent_interchange} = a.interchange_control) AS sent
  FROM x12_allocations a LEFT JOIN deliveries d ON d.id = a.delivery_id
  WHERE {{where}}
), classified AS MATERIALIZED (
  SELECT alloc.*,
    CASE
      WHEN NOT sent AND delivery_state = 'in_flight' AND attempt = delivery_attempts + 1
        THEN 'in_flight'
      WHEN NOT sent THEN 'unsent'
      WHEN EXISTS (SELECT 1 FROM acks k
                   WHERE k.matched_filing_id = alloc.filing_id
                     AND k.matched_delivery_id = alloc.delivery_id
                     AND ({x12_ack_interchange} = alloc.interchange_control
                          OR {x12_ack_group} = alloc.group_control
                          OR ({x12_ack_interchange} IS NULL AND {x12_ack_group} IS NULL
                              AND k.received_at >= alloc.allocated_at)))
        THEN 'acknowledged'
      ELSE 'unacknowledged'
    END AS status
  FROM alloc
)

-- name: x12_groups
-- the columns fill X12GapGroup's fields in the order of x12gaps._GROUP_FIELDS
SELECT sender, receiver, usage, COUNT(*),
  SUM(CASE WHEN status = 'acknowledged' THEN 1 ELSE 0 END),
  SUM(CASE WHEN status = 'unacknowledged' THEN 1 ELSE 0 END),
  SUM(CASE WHEN status = 'unsent' THEN 1 ELSE 0 END),
  SUM(CASE WHEN status = 'in_flight' THEN 1 ELSE 0 END),
  MIN(interchange_control), MAX(interchange_control), MAX(allocated_at)
FROM classified GROUP BY sender, receiver, usage ORDER BY sender, receiver, usage

-- name: x12_gaps
-- the columns fill X12Gap's fields in the order of x12gaps._GAP_FIELDS; the error of the
-- attempt is looked up for the listed gaps only
SELECT g.sender, g.receiver, g.usage, g.interchange_control, g.group_control, g.status,
  g.delivery_id, g.filing_id, g.attempt, g.allocated_at, g.delivery_state,
  (SELECT {x12_row_error} FROM audit u
   WHERE u.filing_id = g.filing_id AND u.delivery_id = g.delivery_id
     AND {x12_row_attempts} = g.attempt AND {x12_row_error} IS NOT NULL
   ORDER BY u.seq DESC LIMIT 1)
FROM (SELECT * FROM classified WHERE status IN ({{kinds}})
      ORDER BY sender, receiver, usage, seq LIMIT {{limit}}) g
ORDER BY g.sender, g.receiver, g.usage, g.seq
