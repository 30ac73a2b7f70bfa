"""Outages, pauses and deadlines (issues 3, 21), written once for both backends: announced
outages (add, list, remove), deferring the due deliveries of a held adapter, flagging
filings whose deadline is at risk; pauses (an operator pauses an adapter, a filing type or
both: the claim skips what an active pause names, nothing is deferred, no attempt is spent,
the key's later deliveries wait behind the paused one). Each body runs in one transaction
and its audit rows commit with the change.

How each stays right with several PostgreSQL processes (harmless on SQLite's one writer):

* ``remove_outage`` locks the outage row, so of two concurrent removals one wins and the
  other sees it removed (409); deliveries it releases are announced with NOTIFY;
* ``defer_held`` locks the rows it moves ``FOR UPDATE SKIP LOCKED`` and re-checks their
  state, so it never touches a delivery another process is claiming (that claim's own
  gate defers it) and never moves one that was claimed meanwhile. On PostgreSQL that is
  one statement (``sql/postgres/outages.sql``); SQLite's RETURNING cannot see the state a
  row had before, so there it is read first and moved next (nothing moves in between);
* ``flag_at_risk`` locks candidate filings in seq order (the order status refreshes lock
  them in) and re-checks ``at_risk_at IS NULL`` under the lock, so two processes flag
  (and audit) a filing once between them;
* ``resume_pause`` locks the row (of two resumes one wins, the other gets 409) and
  ``expire_pauses`` is one UPDATE whose row locks make a concurrent one skip what the
  first resumed: an expired pause is audited once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway import errors, ids, values
from gateway.audit import events
from gateway.rules import outages
from gateway.store import fragments, rows
from gateway.store.sansio import Body, Cx, Where, q, sql
from gateway.store.status import refresh_status
from gateway.store.trail import Trail, record
from gateway.values import SYSTEM, Actor


def add_outage(
    cx: Cx, request: outages.OutageRequest, *, actor: Actor, now: datetime
) -> Body[outages.Outage]:
    o = outages.Outage(
        **{**dict(request), "starts_at": request.starts_at or now},
        id=ids.new_id("out"),
        created_at=now,
        created_by=actor.name,
    )
    yield q(
        "run",
        "outage_insert",
        o.id,
        o.adapter,
        None if o.environment is None else o.environment.value,
        rows.us(o.starts_at),
        rows.us_or_none(o.ends_at),
        o.reason,
        o.reference,
        rows.us(now),
        actor.name,
    )
    yield from record(cx, now, actor, "outage.added", events.outage_details(o))
    return o


def list_outages(
    cx: Cx, *, now: datetime, include_past: bool = False
) -> Body[list[outages.Outage]]:
    found = yield (
        q("all", "outages_all") if include_past else q("all", "outages_current", rows.us(now))
    )
    return [rows.outage(r) for r in found]


def remove_outage(cx: Cx, outage_id: str, *, actor: Actor, now: datetime) -> Body[outages.Outage]:
    row = yield q("one", "outage_for_removal", outage_id)
    if row is None:
        raise errors.NotFound(f"no outage {outage_id}", details={"id": outage_id})
    if row[9] is not None:
        raise errors.Conflict(f"outage {outage_id} was already removed", details={"id": outage_id})
    now_us = rows.us(now)
    yield q("run", "outage_remove", now_us, actor.name, outage_id)
    o = rows.outage(row).model_copy(update={"removed_at": now})
    env = o.environment and o.environment.value
    released = yield from release_deferred(cx, now=now, adapter=o.adapter, environment=env)
    details = {**events.outage_details(o), "released_deliveries": released}
    notify = "outage_removed" if released else None
    yield from record(cx, now, actor, "outage.removed", details, notify=notify)
    return o


def release_deferred(
    cx: Cx, *, now: datetime, adapter: str | None = None, environment: str | None = None
) -> Body[int]:
    """What a gate held may go at once: an outage removed, or a gate open again before the
    time it deferred to (a breaker closed early); one still closed defers it again."""
    if adapter is not None:
        return int((yield q("run", "outage_release_adapter", rows.us(now), adapter)))
    return int((yield q("run", "outage_release_environment", rows.us(now), environment)))


def defer_held(
    cx: Cx,
    *,
    adapter: str,
    until: datetime,
    reason: str,
    now: datetime,
    environment: str | None = None,
) -> Body[int]:
    """Move the due deliveries of a held adapter (or environment) to ``deferred``."""
    now_us, until_us = rows.us(now), rows.us(until)
    # (id, filing id, filing seq, state before, attempts, seq) of each delivery moved
    found = list((yield q("all", "defer_held", adapter, now_us, until_us, reason, environment)))
    if not found:
        return 0
    if cx.dialect == "sqlite":  # read above, moved here (see the module's docstring)
        yield q("rows", "defer_held_move", [(until_us, reason, now_us, r[5]) for r in found])
    trail = Trail(now, cx.redactor)
    touched = set()
    for delivery_id, filing_id, filing_seq, was, attempts, _ in sorted(found, key=lambda r: r[5]):
        if was == "deferred":
            continue  # only its time moved: not a state change
        trail.add(
            "delivery.deferred",
            actor=values.SYSTEM,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={
                "adapter": adapter,
                "attempts": attempts,
                "reason": reason,
                "until": rows.iso(until),
            },
        )
        touched.add(filing_seq)
    yield from refresh_status(cx, touched, now_us)
    yield from trail.flush()
    return len(found)


def flag_at_risk(
    cx: Cx, *, now: datetime, due_before: datetime, windows: Sequence[values.RiskWindow] = ()
) -> Body[list[tuple[str, datetime]]]:
    """Flag unsettled filings whose due_by is near or inside a known outage; once each."""
    settled = fragments.COMMON["settled"]
    pending = f"f.at_risk_at IS NULL AND f.due_by IS NOT NULL AND f.status NOT IN {settled}"
    margin = Where(pending)
    margin.add(f"f.due_by < {margin.arg(rows.us(due_before))}")
    checks = [(margin, "due_by within the at-risk margin")]
    for window in windows:
        w = Where(pending)
        w.add(f"f.due_by >= {w.arg(rows.us(window.start))}")
        w.add(f"f.due_by < {w.arg(rows.us(window.end))}")
        if window.adapter is not None:
            w.add(
                "EXISTS (SELECT 1 FROM deliveries d WHERE d.filing_seq = f.seq "
                f"AND d.adapter = {w.arg(window.adapter)} AND d.state NOT IN {settled})"
            )
        w.eq("f.environment", window.environment)
        checks.append((w, window.reason))
    lock = f"{cx.for_update} OF f" if cx.for_update else ""
    flagged: list[tuple[str, datetime]] = []
    trail = Trail(now, cx.redactor)
    for w, reason in checks:
        at = w.arg(rows.us(now))
        found = yield sql(
            "all",
            f"WITH due AS (SELECT f.seq AS due_seq FROM filings f{w} ORDER BY f.seq{lock}) "
            f"UPDATE filings SET at_risk_at = {at} FROM due "
            "WHERE filings.seq = due.due_seq AND filings.at_risk_at IS NULL "
            "RETURNING seq, id, due_by",
            *w.params,
        )
        for _, filing_id, due_by in sorted(tuple(r) for r in found):
            trail.add(
                "filing.at_risk",
                actor=values.SYSTEM,
                filing_id=filing_id,
                details={"due_by": rows.iso(rows.dt(due_by)), "reason": reason},
            )
            flagged.append((filing_id, rows.dt(due_by)))
    yield from trail.flush()
    return flagged


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
