"""X12 control numbers: their allocation, and their gaps (numbers allocated but never
sent, or sent and never acknowledged).

Allocation is one ``INSERT … ON CONFLICT DO UPDATE … RETURNING``: the counter row's lock
serializes the allocations of a sender/receiver/usage across processes, so numbers are
distinct and increase in commit order (wrapping after 999999999). An allocation is fenced
by a share lock on the delivery row at the claim's token, and recorded with the delivery,
filing and attempt it is for (acks correlate through it).

Every attempt of a delivery through the x12 codec allocates an interchange and a group
control number (``x12_allocations``). Each allocation is classified, on both stores by the
same SQL (``sql/common/x12gaps.sql``; only the JSON accessors differ: ``fragments``,
``x12_*``), read in one snapshot:

- ``unsent``: no ``delivery.sent``/``delivery.sent_again`` audit row carries its interchange
  number, and it is not the attempt running now — the receiver never saw this number;
- ``in_flight``: the delivery's current attempt, being sent now (not a gap yet);
- ``unacknowledged``: sent, and no ack matched to its delivery names its interchange or
  group number (an ack without control numbers counts for what was sent before it);
- ``acknowledged``: sent and answered (accepted, rejected or warning: an answer came).
"""

from __future__ import annotations

from datetime import datetime

from gateway import values
from gateway.store import rows, sansio
from gateway.store.sansio import Where
from gateway.values import GAP_KINDS, GapQuery, X12Gap, X12GapGroup, X12GapReport

#: the fields ``x12_groups``' columns fill, in their order
_GROUP_FIELDS = (
    "sender, receiver, usage, allocated, acknowledged, unacknowledged, unsent, in_flight, "
    "first_interchange, last_interchange, last_allocated_at"
)

#: the fields ``x12_gaps``' columns fill, in their order
_GAP_FIELDS = (
    "sender, receiver, usage, interchange_control, group_control, kind, delivery_id, "
    "filing_id, attempt, allocated_at, delivery_state, attempt_error"
)


def x12_gaps(cx: sansio.Cx, q: GapQuery) -> sansio.Body[X12GapReport]:
    """The named queries of ``sql/common/x12gaps.sql``, their run-time holes filled; the
    store runs them in one snapshot (``_rx_snapshot``), so the counts and the gaps agree."""
    w = Where("1 = 1")
    w.eq("a.sender", q.sender)
    w.eq("a.receiver", q.receiver)
    w.eq("a.usage", q.usage)
    if q.since is not None:
        w.add(f"a.allocated_at >= {w.arg(rows.us(q.since))}")
    if q.until is not None:
        w.add(f"a.allocated_at < {w.arg(rows.us(q.until))}")
    named = sansio.queries(cx.dialect)
    head = named["x12_classified"].replace("{where}", " AND ".join(w.conditions)) + "\n"
    groups = yield sansio.sql("all", head + named["x12_groups"], *w.params)
    kinds = ", ".join(w.arg(kind) for kind in q.kinds or GAP_KINDS)
    gaps_sql = named["x12_gaps"].replace("{kinds}", kinds).replace("{limit}", w.arg(q.limit + 1))
    gaps = list((yield sansio.sql("all", head + gaps_sql, *w.params)))  # up to limit + 1
    return X12GapReport(
        groups=[
            rows.build(X12GapGroup, _GROUP_FIELDS, g, last_allocated_at=rows.dt) for g in groups
        ],
        gaps=[rows.build(X12Gap, _GAP_FIELDS, r, allocated_at=rows.dt) for r in gaps[: q.limit]],
        truncated=len(gaps) > q.limit,
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
    counter = (sender, receiver, usage)
    interchange, group = yield sansio.q("one", "x12_allocate", *counter)
    taken_for = (delivery_id, filing_id, attempt, rows.us(now))
    yield sansio.q("run", "x12_record_allocation", *counter, interchange, group, *taken_for)
    return values.Controls(interchange=interchange, group=group)
