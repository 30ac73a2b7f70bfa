"""Pauses (issue 21), written once for both backends: an operator pauses an adapter, a
filing type or both; the claim skips what an active pause names (nothing is deferred, no
attempt is spent, the key's later deliveries wait behind the paused one). Each change is
one transaction with its ``control.paused`` / ``control.resumed`` audit row.

With several PostgreSQL processes, ``resume_pause`` locks the row (of two resumes one
wins, the other gets 409) and ``expire_pauses`` is one UPDATE whose row locks make a
concurrent one skip what the first resumed: an expired pause is audited once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway import errors, ids
from gateway.rules import outages
from gateway.store import rows
from gateway.store.outages import list_outages
from gateway.store.sansio import Body, Cx, q
from gateway.store.trail import Trail, record
from gateway.values import SYSTEM, Actor


def _pause(r: Sequence[Any]) -> outages.Pause:
    at = [rows.dt_or_none(r[i]) for i in (4, 7)]
    return outages.Pause(
        id=r[0], adapter=r[1], filing_type=r[2], reason=r[3], ends_at=at[0],
        created_at=rows.dt(r[5]), created_by=r[6], resumed_at=at[1], resumed_by=r[8],
    )  # fmt: skip


def add_pause(
    cx: Cx, request: outages.PauseRequest, *, actor: Actor, now: datetime
) -> Body[outages.Pause]:
    p = outages.Pause(**dict(request), id=ids.new_id("pau"), created_at=now, created_by=actor.name)
    ftype = None if p.filing_type is None else p.filing_type.value
    end = rows.us_or_none(p.ends_at)
    yield q("run", "pause_insert", p.id, p.adapter, ftype, p.reason, end, rows.us(now), actor.name)
    yield from record(cx, now, actor, "control.paused", p.audit_details())
    return p


def list_pauses(cx: Cx, *, include_resumed: bool = False) -> Body[list[outages.Pause]]:
    found = yield q("all", "pauses_all" if include_resumed else "pauses_unresumed")
    return [_pause(r) for r in found]


def controls(cx: Cx, *, now: datetime) -> Body[tuple[list[outages.Outage], list[outages.Pause]]]:
    """The guard's view before a claim: outages not over and pauses not resumed, one read."""
    announced = yield from list_outages(cx, now=now)
    return announced, (yield from list_pauses(cx))


def resume_pause(cx: Cx, pause_id: str, *, actor: Actor, now: datetime) -> Body[outages.Pause]:
    row = yield q("one", "pause_for_resume", pause_id)
    if row is None:
        raise errors.NotFound(f"no pause {pause_id}", details={"id": pause_id})
    if row[7] is not None:
        raise errors.Conflict(f"pause {pause_id} was already resumed", details={"id": pause_id})
    yield q("run", "pause_resume", rows.us(now), actor.name, pause_id)
    p = _pause(row).model_copy(update={"resumed_at": now, "resumed_by": actor.name})
    yield from record(cx, now, actor, "control.resumed", p.audit_details(), notify="pause_resumed")
    return p


def expire_pauses(cx: Cx, *, now: datetime) -> Body[list[outages.Pause]]:
    """Resume, audited, the pauses whose ``ends_at`` has come."""
    found = [_pause(r) for r in (yield q("all", "pauses_expire", rows.us(now)))]
    trail = Trail(now, cx.redactor)
    for p in found:
        trail.add("control.resumed", actor=SYSTEM, details={**p.audit_details(), "expired": True})
    yield from trail.flush(notify="pause_resumed")  # announced only when there are rows
    return found
