"""Operator retry of status callbacks: a dead (or waiting) event goes out again now.

The selection and its rules, shared by both stores: without ids, the dead events
(optionally of one filing) whose last change is not after ``not_after`` — a bulk retry
pins that to its preview's time, so events that die meanwhile are not swept in; with ids,
exactly those events, each of which must be ``dead`` or ``waiting_retry`` (409 otherwise,
404 if unknown). A retried event keeps its attempt count (the ``[callbacks.retry]``
policy still bounds it: one more failure past the cap is dead again) and is claimable at
once; each one is audited as ``callback.retried`` with the actor and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from gateway import errors, models

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
