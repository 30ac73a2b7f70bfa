"""Status callbacks (schema v5): a durable outbox of events, written once for both backends.

An event is queued inside whatever transaction changed a filing's status
(``enqueue_callback``, called from the status refresh), so it is queued exactly when the
change commits. Claims lock the head event of each filing (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL; SQLite has one writer): an event is a head only while no earlier event of its
filing is open (pending, waiting_retry or in_flight), so two processes never send two
events of one filing at once, and a filing's events go out in order. Claims are leased
and fenced like deliveries: a finish counts only with the claim's lease token, while the
event is still in flight.

Operator retry (rules and value types in ``gateway.rules.callbacks``) selects its events
``FOR UPDATE`` on PostgreSQL, with the state guard in the WHERE, so an event claimed or
finished meanwhile by another process is not swept in; the chosen events change in one
statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from gateway import models, values
from gateway.rules import callbacks as rules
from gateway.rules.callbacks import CallbackRetry, CallbackSelection
from gateway.store import rows
from gateway.store.sansio import Body, Cx, Where, q, sql
from gateway.store.trail import Trail

#: the columns of ``GET /v1/callbacks``' events, named by the field each fills (an event
#: in flight or settled has no next attempt)
_VIEW_COLS = (
    "id, filing_id, url, event, state, attempts, last_error, created_at, delivered_at, CASE "
    "WHEN state = 'pending' OR state = 'waiting_retry' THEN available_at END AS next_attempt_at"
)

#: the columns ``callback_claim`` returns, by the field each fills
_CLAIMED = "seq, id, filing_id, url, body, attempts, token, created_at"


def _view(r: Sequence[Any]) -> models.CallbackView:
    return rows.build(
        models.CallbackView,
        _VIEW_COLS,
        r,
        created_at=rows.dt,
        delivered_at=rows.dt_or_none,
        next_attempt_at=rows.dt_or_none,
    )


def claim_callbacks(
    cx: Cx, *, owner: str, now: datetime, lease_s: float, limit: int
) -> Body[list[values.CallbackClaim]]:
    now_us = rows.us(now)
    until = rows.us(now + timedelta(seconds=lease_s))
    taken = yield q("all", "callback_claim", now_us, limit, owner, until)
    return [
        rows.build(values.CallbackClaim, _CLAIMED, r, skip=("seq",), created_at=rows.dt)
        for r in sorted(taken, key=lambda r: r[0])
    ]


def finish_callback(
    cx: Cx,
    claim: values.CallbackClaim,
    *,
    now: datetime,
    state: str,
    at: datetime | None = None,
    error: str | None = None,
) -> Body[bool]:
    now_us = rows.us(now)
    row = yield q(
        "one", "callback_finish", state, rows.us(at or now), error, now_us, claim.id, claim.token
    )
    if row is None:
        return False
    if state in ("delivered", "dead"):
        trail = Trail(now, cx.redactor)
        trail.add(
            f"callback.{state}",
            actor=values.SYSTEM,
            filing_id=claim.filing_id,
            details={"callback_id": claim.id, "event": row[1], "attempts": row[0], "error": error},
        )
        yield from trail.flush()
    return True


def release_callbacks(cx: Cx, *, owner: str, now: datetime) -> Body[int]:
    changed = yield q("run", "callback_release", rows.us(now), owner)
    return int(changed)


def next_callback_due(cx: Cx) -> Body[datetime | None]:
    return rows.dt_or_none((yield q("val", "callback_next_due")))


def list_callbacks(
    cx: Cx, *, filing_id: str | None, state: str | None, limit: int
) -> Body[list[models.CallbackView]]:
    w = Where()
    w.eq("filing_id", filing_id)
    w.eq("state", state)
    text = f"SELECT {_VIEW_COLS} FROM callbacks{w} ORDER BY seq DESC LIMIT {w.arg(limit)}"
    return [_view(r) for r in (yield sql("all", text, *w.params))]


def _views(cx: Cx, ids: list[str]) -> Body[list[models.CallbackView]]:
    """The events as ``GET /v1/callbacks`` shows them, in the order of ``ids``."""
    if not ids:
        return []
    found = yield sql("all", f"SELECT {_VIEW_COLS} FROM callbacks WHERE id {cx.any('$1')}", ids)
    by_id = {r[0]: _view(r) for r in found}
    return [by_id[i] for i in ids]


def _where(cx: Cx, sel: CallbackSelection) -> Where:
    if sel.ids:
        w = Where("state IN (" + ",".join(f"'{s}'" for s in rules.RETRYABLE) + ")")
        w.add(f"id {cx.any(w.arg(list(sel.ids)))}")
        return w
    w = Where("state = 'dead'")
    w.eq("filing_id", sel.filing_id)
    if sel.not_after is not None:
        w.add(f"updated_at <= {w.arg(rows.us(sel.not_after))}")
    return w


def retry_callbacks(
    cx: Cx, sel: CallbackSelection, *, actor: values.Actor, now: datetime, reason: str
) -> Body[CallbackRetry]:
    if sel.ids:
        found = yield q("all", "callback_states", list(sel.ids))
        rules.check_ids(sel, {r[0]: r[1] for r in found})
    w = _where(cx, sel)
    matched = int((yield sql("val", f"SELECT COUNT(*) FROM callbacks{w}", *w.params)))
    text = "SELECT seq, id, filing_id, event, state, attempts FROM callbacks"
    text += f"{w} ORDER BY seq LIMIT {w.arg(sel.limit)}{cx.for_update}"
    chosen = list((yield sql("all", text, *w.params)))
    ids = [r[1] for r in chosen]
    if sel.dry_run:
        views = yield from _views(cx, ids)
        return CallbackRetry(matched=matched, callbacks=views, remaining=matched)
    if chosen:
        yield q("run", "callback_retry", rows.us(now), [r[0] for r in chosen])
    trail = Trail(now, cx.redactor)
    for _, cb_id, filing_id, event, state, attempts in chosen:
        trail.add(
            "callback.retried",
            actor=actor,
            filing_id=filing_id,
            details=rules.audit_details(cb_id, event, state, attempts, reason),
        )
    views = yield from _views(cx, ids)
    yield from trail.flush()
    return CallbackRetry(matched=matched, callbacks=views, remaining=matched - len(chosen))
