"""Operator actions, written once for both backends: retry, cancel or resend a filing, and
bulk retry or cancel (issue 7), each re-deriving ``blocked`` along the ordering keys it
touched and the statuses of the filings it changed, audited in the same transaction.

How they stay right with several PostgreSQL processes (harmless on SQLite's one writer):

* ``operator_action`` (retry, cancel, resend) takes the filing's ordering-key lock first,
  so no accept, claim or finish of the same key interleaves with the re-blocking; a send in
  progress refuses the whole action (409: its send decides); the UPDATE keeps the
  lifecycle table's source states as its guard.
* A bulk chunk takes the ordering-key locks of the deliveries it selected, then selects
  them again ``FOR UPDATE`` (the filter re-checked on the latest row versions), so a
  delivery finished or claimed meanwhile by another process is changed only if it still
  matches; the UPDATE re-checks the state once more. Cancelling an in-flight delivery
  bumps its lease token, which fences the process that holds it.
* A retry or a resend announces new work (NOTIFY on PostgreSQL) once it commits.
"""

from __future__ import annotations

from datetime import datetime

from gateway import errors, values
from gateway.audit import events
from gateway.rules import lifecycle
from gateway.store import rows
from gateway.store.sansio import Body, Cx, Where, q, sql
from gateway.store.status import find_filing, lock_keys, reblock, refresh_status, refuse_in_flight
from gateway.store.trail import Trail
from gateway.values import Actor

_E = lifecycle.Event

#: each action's lifecycle event, its audit event, and what a filing lacks when it changes nothing
_KINDS = {
    "retry": (_E.OPERATOR_RETRY, "delivery.retried", "no dead or blocked delivery to retry"),
    "cancel": (_E.OPERATOR_CANCEL, "delivery.cancelled", "nothing left to cancel"),
    "resend": (_E.OPERATOR_RESEND, "delivery.resent", "no sent delivery to resend"),
}


def operator_action(
    cx: Cx, kind: str, filing_id: str, actor: Actor, now: datetime, reason: str | None = None
) -> Body[values.Action]:
    """``retry`` (dead/blocked → pending), ``cancel``, or ``resend`` (a sent filing again:
    same filing and delivery id, a new attempt; the ack wait and any conflict flag start
    afresh); then re-derive blocking per key."""
    event, audit_event, nothing = _KINDS[kind]
    filing_seq, ordering_key = yield from find_filing(cx, filing_id)
    yield lock_keys([ordering_key])
    now_us = rows.us(now)
    yield from refuse_in_flight(cx, filing_seq, filing_id, event, now_us)
    changed = list((yield q("all", f"operator_{kind}", now_us, filing_seq)))
    if not changed:
        raise errors.Refused(
            "conflict", f"filing {filing_id} has {nothing}", details={"id": filing_id}
        )
    trail = Trail(now, cx.redactor)
    touched = {filing_seq}
    for delivery_id, adapter, _ in changed:
        details = {"adapter": adapter} if reason is None else {"adapter": adapter, "reason": reason}
        trail.add(
            audit_event, actor=actor, filing_id=filing_id, delivery_id=delivery_id, details=details
        )
    for adapter, key in sorted({(r[1], r[2]) for r in changed}):
        touched |= yield from reblock(cx, trail, actor, adapter, key, now_us)
    yield from refresh_status(cx, touched, now_us)
    yield from trail.flush(notify=kind)
    return values.Action(filing_id, [r[0] for r in changed])


# --- bulk retry / cancel (issue 7) -------------------------------------------------------


def _bulk_where(cx: Cx, action: str, flt: values.BulkFilter, now_us: int) -> Where:
    """The filter as SQL over ``deliveries d``, with its parameters. A cancel leaves out a
    delivery whose send is in progress (a lease kept past a late record: ``sending``)."""
    allowed = values.BULK_FROM[action]
    if flt.state is not None and flt.state.value not in allowed:
        raise errors.InvalidInput(
            f"{action} applies to deliveries that are {', '.join(allowed)}",
            details=[{"loc": "body.state", "msg": f"one of {', '.join(allowed)}"}],
        )
    w = Where()
    states = list(allowed) if flt.state is None else [flt.state.value]
    w.add(f"d.state {cx.any(w.arg(states))}")
    w.eq("d.adapter", flt.adapter)
    if action == "cancel":
        w.add(f"(d.lease_owner IS NULL OR d.available_at <= {w.arg(now_us)})")
    if flt.not_after is not None:
        w.add(f"d.updated_at <= {w.arg(rows.us(flt.not_after))}")
    sub = Where()
    sub.params = w.params  # one numbering
    sub.eq("f.filing_type", None if flt.filing_type is None else flt.filing_type.value)
    sub.eq("f.environment", None if flt.environment is None else flt.environment.value)
    for column, only in (("f.filer_code", flt.filer_codes), ("f.environment", flt.environments)):
        if only is not None:
            sub.add(f"{column} {cx.any(sub.arg(list(only)))}")
    if sub.conditions:
        w.add(f"d.filing_seq IN (SELECT f.seq FROM filings f{sub})")
    return w


def _select(
    cx: Cx, action: str, flt: values.BulkFilter, now_us: int, limit: int, *, lock: bool = False
) -> Body[list[tuple[str, str, str, str, str]]]:
    """(id, filing id, adapter, state, ordering key) of the first ``limit`` matches;
    ``lock``: locked ``FOR UPDATE`` (PostgreSQL), the filter read on the latest versions."""
    w = _bulk_where(cx, action, flt, now_us)
    text = "SELECT d.id, d.filing_id, d.adapter, d.state, d.ordering_key FROM deliveries d"
    text += f"{w} ORDER BY d.seq LIMIT {w.arg(limit)}"
    found = yield sql(
        "all", text + (f"{cx.for_update} OF d" if lock and cx.for_update else ""), *w.params
    )
    return [(r[0], r[1], r[2], r[3], r[4]) for r in found]


def bulk_action(
    cx: Cx,
    action: str,
    flt: values.BulkFilter,
    *,
    actor: Actor,
    now: datetime,
    reason: str,
    limit: int,
    dry_run: bool = False,
) -> Body[values.BulkResult]:
    """One chunk of a bulk retry or cancel, audited per delivery and once as a whole;
    ``dry_run``: what it would change, changing nothing (as ``retry_callbacks``' does)."""
    now_us = rows.us(now)
    w = _bulk_where(cx, action, flt, now_us)
    matched = int((yield sql("val", f"SELECT COUNT(*) FROM deliveries d{w}", *w.params)))
    candidates = yield from _select(cx, action, flt, now_us, limit)
    if dry_run:
        would = [r[:4] for r in candidates]
        return values.BulkResult(matched=matched, deliveries=would, dry_run=True)
    if not candidates:
        return values.BulkResult(matched=matched)
    yield lock_keys(r[4] for r in candidates)
    chosen = yield from _select(cx, action, flt, now_us, limit, lock=True)
    if not chosen:
        return values.BulkResult(matched=matched)
    # the state guard again: a delivery chosen in this transaction may have been claimed since
    ids = [r[0] for r in chosen]
    changed = list((yield q("all", f"bulk_{action}", now_us, ids)))
    trail = Trail(now, cx.redactor)
    touched: set[int] = set()
    for delivery_id, filing_id, filing_seq, adapter, _ in changed:
        trail.add(
            _KINDS[action][1],
            actor=actor,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={"adapter": adapter, "reason": reason, "bulk": True},
        )
        touched.add(filing_seq)
    for adapter, key in sorted({(r[3], r[4]) for r in changed}):
        touched |= yield from reblock(cx, trail, actor, adapter, key, now_us)
    yield from refresh_status(cx, touched, now_us)
    trail.add(
        f"operator.bulk_{action}",
        actor=actor,
        details={"reason": reason, "changed": len(changed), "filter": events.bulk_filter(flt)},
    )
    yield from trail.flush(notify="bulk_retry" if action == "retry" else None)
    done = {r[0] for r in changed}  # what the state guard let through
    return values.BulkResult(matched=matched, deliveries=[r[:4] for r in chosen if r[0] in done])
