"""Rejected inbound events (schema v4): kept once per (source, event id), audited, listed
newest first. A redelivered message or a re-dropped file inserts nothing and writes no
second audit row. Accept's side of v4 (``filings.source_event_id``) is in accept.
"""

from __future__ import annotations

import json
from datetime import datetime

from gateway import models, values
from gateway.audit import events
from gateway.store import rows
from gateway.store.sansio import Body, Cx, Where, q, sql
from gateway.store.trail import Trail
from gateway.values import Actor

_R_COLS = "seq, id, source, origin, event_id, reason, details, body, content_type, received_at"


def reject_event(cx: Cx, event: models.RejectedEvent) -> Body[bool]:
    seq = yield q(
        "val",
        "rejected_insert",
        event.id,
        event.source,
        event.origin,
        event.event_id,
        event.reason,
        json.dumps(event.details, default=str),
        event.body,
        event.content_type,
        rows.us(event.received_at),
    )
    if seq is None:
        return False
    trail = Trail(event.received_at, cx.redactor)
    trail.add(
        "event.rejected",
        actor=Actor(name=f"source:{event.source}"),
        details=events.rejected_details(event),
    )
    yield from trail.flush()
    return True


def list_rejected(
    cx: Cx, *, source: str | None, limit: int, cursor: str | None
) -> Body[tuple[list[models.RejectedEvent], str | None]]:
    w = Where()
    if cursor is not None:
        w.add(f"seq < {w.arg(values.decode_cursor(cursor))}")
    w.eq("source", source)
    text = f"SELECT {_R_COLS} FROM rejected_events{w} ORDER BY seq DESC LIMIT {w.arg(limit + 1)}"
    found = list((yield sql("all", text, *w.params)))
    more = len(found) > limit
    found = found[:limit]
    items = [_one(r) for r in found]
    return items, (values.encode_cursor(found[-1][0]) if more and found else None)


def _one(r: tuple[object, ...]) -> models.RejectedEvent:
    return rows.build(
        models.RejectedEvent,
        _R_COLS,
        r,
        skip=("seq",),
        details=rows.json_value,
        received_at=rows.dt,
    )


def get_rejected(cx: Cx, rejected_id: str) -> Body[models.RejectedEvent | None]:
    """One rejected event by its id (``rej_…``), or None."""
    found = yield sql("one", f"SELECT {_R_COLS} FROM rejected_events WHERE id = $1", rejected_id)
    return None if found is None else _one(found)


def replay_failed(
    cx: Cx,
    rejected_id: str,
    *,
    error: str,
    details: object,
    actor: Actor,
    reason: str,
    now: datetime,
) -> Body[bool]:
    """A replay that failed again: the row stays, with the new error; audited."""
    changed = yield sql(
        "run",
        "UPDATE rejected_events SET reason = $1, details = $2 WHERE id = $3",
        error,
        json.dumps(details, default=str),
        rejected_id,
    )
    if not changed:
        return False
    trail = Trail(now, cx.redactor)
    trail.add(
        "event.replay_failed",
        actor=actor,
        details={"rejected_id": rejected_id, "reason": reason, "error": error},
    )
    yield from trail.flush()
    return True


def replayed(
    cx: Cx,
    rejected_id: str,
    *,
    filing_ids: list[str],
    created: bool,
    actor: Actor,
    reason: str,
    now: datetime,
) -> Body[bool]:
    """A replay that became filings: the row leaves ``rejected_events`` (the audit trail
    keeps both its rejection and this replay). False: another replay got there first."""
    changed = yield sql("run", "DELETE FROM rejected_events WHERE id = $1", rejected_id)
    if not changed:
        return False
    trail = Trail(now, cx.redactor)
    for filing_id in filing_ids:
        trail.add(
            "event.replayed",
            actor=actor,
            filing_id=filing_id,
            details={"rejected_id": rejected_id, "reason": reason, "created": created},
        )
    yield from trail.flush()
    return True
