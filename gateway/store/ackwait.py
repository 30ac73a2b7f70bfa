"""The wait for acknowledgements, written once for both backends: deadlines that pass
(``flag_overdue``) or move (``extend_ack_deadlines``), and the operator's way out of a
wait: stop waiting (``close_ack``), or send the filing again (``actions.operator_action``,
``resend``).

With several PostgreSQL processes, ``close_ack`` locks the filing's ordering key, as every
change to a key's deliveries does, before it looks at its deliveries; a released hold
announces work (NOTIFY on PostgreSQL) once it commits.
"""

from __future__ import annotations

import json
from datetime import datetime

from gateway import errors, values
from gateway.store import rows
from gateway.store.sansio import Body, Cx, q
from gateway.store.status import find_filing, lock_keys
from gateway.store.trail import Trail
from gateway.values import Actor


def flag_overdue(cx: Cx, *, now: datetime) -> Body[list[tuple[str, str, str]]]:
    """Flag the sent deliveries whose ack deadline has passed (once each)."""
    flagged = yield q("all", "flag_overdue", rows.us(now))
    trail = Trail(now, cx.redactor)
    for delivery_id, filing_id, adapter, due in flagged:
        trail.add(
            "delivery.ack_overdue",
            actor=values.SYSTEM,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={"adapter": adapter, "ack_due_at": rows.iso(rows.dt(due))},
        )
    yield from trail.flush()  # nothing to append: no statement
    return [(r[0], r[1], r[2]) for r in flagged]


def extend_ack_deadlines(cx: Cx, adapter: str, *, by_s: float, now: datetime) -> Body[int]:
    """Push back the ack deadlines not yet passed of one adapter's sent deliveries."""
    changed: int = yield q("run", "extend_ack_deadlines", round(by_s * 1_000_000), adapter)
    return changed


def close_ack(
    cx: Cx, filing_id: str, *, actor: Actor, now: datetime, reason: str
) -> Body[values.Action]:
    """Stop waiting for an ack (a delivered delivery), or resolve a flagged conflict
    (``operator_close``: the state stays)."""
    filing_seq, ordering_key = yield from find_filing(cx, filing_id)
    yield lock_keys([ordering_key])
    note = json.dumps({"closed_by": actor.name, "reason": reason, "closed_at": rows.iso(now)})
    changed = yield q("all", "close_ack", note, rows.us(now), filing_seq)
    if not changed:
        raise errors.Refused(
            "conflict",
            f"filing {filing_id} has no delivery waiting for an ack or in conflict",
            details={"id": filing_id},
        )
    trail = Trail(now, cx.redactor)
    for delivery_id, adapter, state in changed:
        trail.add(
            "delivery.ack_closed",
            actor=actor,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={"adapter": adapter, "reason": reason, "state": state},
        )
    yield from trail.flush(notify="close_ack")  # a hold released
    return values.Action(filing_id, [r[0] for r in changed])
