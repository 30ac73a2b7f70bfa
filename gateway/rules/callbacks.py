"""Status callback rules: which filing statuses send one, the event's body, and operator
retry of callbacks (the store applies them in its transactions). Pure.

Operator retry: a dead (or waiting) event goes out again now. The selection and its rules:
without ids, the dead events (optionally of one filing) whose last change is not after
``not_after`` — a bulk retry pins that to its preview's time, so events that die meanwhile
are not swept in; with ids, exactly those events, each of which must be ``dead`` or
``waiting_retry`` (409 otherwise, 404 if unknown). A retried event keeps its attempt count
(the ``[callbacks.retry]`` policy still bounds it: one more failure past the cap is dead
again) and is claimable at once; each one is audited as ``callback.retried`` with the actor
and the reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway import errors, models

#: filing statuses a callback is sent for
CALLBACK_STATUSES = frozenset({"delivered", "acknowledged", "rejected", "dead", "cancelled"})

#: callback states an operator retry may start from
RETRYABLE = ("dead", "waiting_retry")


@dataclass(frozen=True, slots=True)
class CallbackSelection:
    """Which callbacks an operator retry is about."""

    ids: tuple[str, ...] = ()
    filing_id: str | None = None
    not_after: datetime | None = None
    limit: int = 100
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class CallbackRetry:
    """What a retry did (or, dry, would do)."""

    matched: int
    callbacks: list[models.CallbackView] = field(default_factory=list)
    remaining: int = 0


def check_ids(sel: CallbackSelection, found: dict[str, str]) -> None:
    """404 for an unknown id, 409 for one in a state that is not retried."""
    for cb_id in sel.ids:
        if cb_id not in found:
            raise errors.NotFound(f"no callback {cb_id}", details={"id": cb_id})
        if found[cb_id] not in RETRYABLE:
            raise errors.Conflict(
                f"callback {cb_id} is {found[cb_id]}; only dead or waiting callbacks are retried",
                details={"id": cb_id, "state": found[cb_id]},
            )


def audit_details(
    cb_id: str, event: str, before: str, attempts: int, reason: str
) -> dict[str, object]:
    return {
        "callback_id": cb_id,
        "event": event,
        "state_before": before,
        "attempts": attempts,
        "reason": reason,
    }


def callback_event(
    f: Sequence[Any],
    delivery_rows: Iterable[Sequence[Any]],
    previous: str,
    status: str,
    timestamp: str,
) -> tuple[str, dict[str, Any]]:
    """The event name and body of a status callback. ``f`` is the filing's (id, filing_type,
    environment, reference, …); each delivery row is (id, adapter, state, ack JSON or None);
    ``timestamp``: the change's time, as the trail spells it."""
    deliveries = [
        {
            "id": r[0],
            "adapter": r[1],
            "state": r[2],
            "ack": None if r[3] is None else json.loads(r[3]),
        }
        for r in delivery_rows
    ]
    event = f"filing.{status}"
    body = {
        "type": event,
        "timestamp": timestamp,
        "data": {
            "filing_id": f[0],
            "status": status,
            "previous_status": previous,
            "filing_type": f[1],
            "environment": f[2],
            "reference": f[3],
            "deliveries": deliveries,
        },
    }
    return event, body
