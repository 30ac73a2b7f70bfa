"""X12 control numbers: their allocation, and their gaps (numbers allocated but never
sent, or sent and never acknowledged).

Allocation is one ``INSERT … ON CONFLICT DO UPDATE … RETURNING``: the counter row's lock
serializes the allocations of a sender/receiver/usage across processes, so numbers are
distinct and increase in commit order (wrapping after 999999999). An allocation is fenced
by a share lock on the delivery row at the claim's token, and recorded with the delivery,
filing and attempt it is for (acks correlate through it).

Every attempt of a delivery through the x12 codec allocates an interchange and a group
control number (``x12_allocations``). Each allocation is classified, on both stores by the
same SQL (only the JSON accessors differ: ``fragments``, ``x12_*``), read in one snapshot:

- ``unsent``: no ``delivery.sent``/``delivery.sent_again`` audit row carries its interchange
  number, and it is not the attempt running now — the receiver never saw this number;
- ``in_flight``: the delivery's current attempt, being sent now (not a gap yet);
- ``unacknowledged``: sent, and no ack matched to its delivery names its interchange or
  group number (an ack without control numbers counts for what was sent before it);
- ``acknowledged``: sent and answered (accepted, rejected or warning: an answer came).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway import values
from gateway.store import fragments, rows, sansio
from gateway.store.sansio import Where
from gateway.values import GAP_KINDS, GapQuery, X12Gap, X12GapGroup, X12GapReport

_CLASSIFIED = """
WITH alloc AS MATERIALIZED (
  SELECT a.seq, a.sender, a.receiver, a.usage, a.interchange_control, a.group_control,
         a.delivery_id, a.filing_id, a.attempt, a.allocated_at,
         d.state AS delivery_state, d.attempts AS delivery_attempts,
         EXISTS (SELECT 1 FROM audit u
                 WHERE u.filing_id = a.filing_id AND u.delivery_id = a.delivery_id
                   AND u.event IN ('delivery.sent', 'delivery.sent_again')
                   AND {x12_sent_interchange} = a.interchange_control) AS sent
  FROM x12_allocations a LEFT JOIN deliveries d ON d.id = a.delivery_id
  WHERE {where}
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
"""

_GROUPS = """
SELECT sender, receiver, usage, COUNT(*),
  SUM(CASE WHEN status = 'acknowledged' THEN 1 ELSE 0 END),
  SUM(CASE WHEN status = 'unacknowledged' THEN 1 ELSE 0 END),
  SUM(CASE WHEN status = 'unsent' THEN 1 ELSE 0 END),
  SUM(CASE WHEN status = 'in_flight' THEN 1 ELSE 0 END),
  MIN(interchange_control), MAX(interchange_control), MAX(allocated_at)
FROM classified GROUP BY sender, receiver, usage ORDER BY sender, receiver, usage
"""

#: the fields ``_GROUPS``' columns fill, in their order
_GROUP_FIELDS = (
    "sender, receiver, usage, allocated, acknowledged, unacknowledged, unsent, in_flight, "
    "first_interchange, last_interchange, last_allocated_at"
)

#: the error of the attempt is looked up for the listed gaps only
_GAPS = """
SELECT g.sender, g.receiver, g.usage, g.interchange_control, g.group_control, g.status,
  g.delivery_id, g.filing_id, g.attempt, g.allocated_at, g.delivery_state,
  (SELECT {x12_row_error} FROM audit u
   WHERE u.filing_id = g.filing_id AND u.delivery_id = g.delivery_id
     AND {x12_row_attempts} = g.attempt AND {x12_row_error} IS NOT NULL
   ORDER BY u.seq DESC LIMIT 1)
FROM (SELECT * FROM classified WHERE status IN ({kinds})
      ORDER BY sender, receiver, usage, seq LIMIT {limit}) g
ORDER BY g.sender, g.receiver, g.usage, g.seq
"""

#: the fields ``_GAPS``' columns fill, in their order
_GAP_FIELDS = (
    "sender, receiver, usage, interchange_control, group_control, kind, delivery_id, "
    "filing_id, attempt, allocated_at, delivery_state, attempt_error"
)


def queries(dialect: sansio.Dialect, q: GapQuery) -> tuple[str, str, list[Any], list[Any]]:
    """(groups SQL, gaps SQL, groups params, gaps params), with ``$1`` placeholders."""
    w = Where("1 = 1")
    w.eq("a.sender", q.sender)
    w.eq("a.receiver", q.receiver)
    w.eq("a.usage", q.usage)
    if q.since is not None:
        w.add(f"a.allocated_at >= {w.arg(rows.us(q.since))}")
    if q.until is not None:
        w.add(f"a.allocated_at < {w.arg(rows.us(q.until))}")
    words = fragments.of(dialect)
    head = _CLASSIFIED.format_map({**words, "where": " AND ".join(w.conditions)})
    groups_params = list(w.params)
    kinds = ", ".join(w.arg(kind) for kind in q.kinds or GAP_KINDS)
    gaps = head + _GAPS.format_map({**words, "kinds": kinds, "limit": w.arg(q.limit + 1)})
    return head + _GROUPS, gaps, groups_params, w.params


def x12_gaps(cx: sansio.Cx, q: GapQuery) -> sansio.Body[X12GapReport]:
    """The two queries; the store runs them in one snapshot (``_rx_snapshot``), so the
    counts and the listed gaps agree."""
    groups_sql, gaps_sql, groups_params, gaps_params = queries(cx.dialect, q)
    groups = yield sansio.sql("all", groups_sql, *groups_params)
    gaps = yield sansio.sql("all", gaps_sql, *gaps_params)
    return report(list(groups), list(gaps), q.limit)


def report(groups: list[Any], gaps: list[Any], limit: int) -> X12GapReport:
    """The report from the rows of the two queries (``gaps`` may hold ``limit + 1``)."""
    return X12GapReport(
        groups=[
            rows.build(X12GapGroup, _GROUP_FIELDS, g, last_allocated_at=rows.dt) for g in groups
        ],
        gaps=[rows.build(X12Gap, _GAP_FIELDS, r, allocated_at=rows.dt) for r in gaps[:limit]],
        truncated=len(gaps) > limit,
    )


def allocate_controls(
    cx: sansio.Cx,
    *,
    sender: str,
    receiver: str,
    usage: str,
    delivery_id: str,
    filing_id: str,
    attempt: int,
    now: datetime,
    token: int | None = None,
) -> sansio.Body[values.Controls | None]:
    """Next interchange and group numbers of a sender/receiver/usage; None if the lease is gone."""
    if token is not None and (yield sansio.q("val", "x12_lease_fence", delivery_id, token)) is None:
        return None
    interchange, group = yield sansio.q("one", "x12_allocate", sender, receiver, usage)
    yield sansio.q(
        "run",
        "x12_record_allocation",
        sender,
        receiver,
        usage,
        interchange,
        group,
        delivery_id,
        filing_id,
        attempt,
        rows.us(now),
    )
    return values.Controls(interchange=interchange, group=group)
