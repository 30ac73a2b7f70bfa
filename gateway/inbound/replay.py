"""Replay a rejected inbound event after a fix (issue 21): its stored bytes go through
today's sources, normalizers and routes once more.

- Still bad: the row stays in ``rejected_events`` with the new error, and the replay is
  audited (``event.replay_failed``).
- Good: its filings are committed with the idempotency key the original event would have
  had, so two replays (or a replay and the source sending the fixed event again) make one
  filing; the row then leaves ``rejected_events`` and the replay is audited
  (``event.replayed``, one row per filing, with the operator's reason).

What cannot be replayed, refused with 409: a body kept truncated (the store keeps 64 KiB),
and an event of a source no longer configured. AMQP message headers are not stored, so a
binary-mode CloudEvent from a queue comes back as its data alone.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gateway import errors, models
from gateway.inbound import intake as intake_mod
from gateway.values import Actor


class ReplayOutcome(StrEnum):
    """What a replay did."""

    ACCEPTED = "accepted"  # a new filing
    DUPLICATE = "duplicate"  # its filing existed already (an earlier replay, a resend)
    REJECTED = "rejected"  # still bad: stays in rejected_events with the new error


@dataclass(frozen=True, slots=True)
class Replayed:
    """The result of one replay."""

    rejected_id: str
    outcome: ReplayOutcome
    filing_ids: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None


def stored_bytes(event: models.RejectedEvent) -> bytes:
    """The event's bytes as received; 409 when the store kept only their first 64 KiB."""
    if event.body.startswith("base64:"):
        try:
            body = base64.b64decode(event.body.removeprefix("base64:"), validate=True)
        except binascii.Error:
            body = event.body.encode()
    else:
        body = event.body.encode("utf-8")
    if len(body) >= intake_mod.MAX_KEPT_BODY:
        raise errors.Conflict(
            f"rejected event {event.id} was kept truncated to "
            f"{intake_mod.MAX_KEPT_BODY} bytes; send it again from its source",
            details={"rejected_id": event.id, "loc": "body"},
        )
    return body


def raw_of(event: models.RejectedEvent) -> intake_mod.RawEvent:
    """The event as its consumer handed it over, keyed as it was then.

    The store keeps ``default_key or event_id`` as ``event_id``. A consumer's default
    key always starts with its origin's scheme (``file:SOURCE:NAME:DIGEST``,
    ``amqp:QUEUE:sha256:…``); a message id that does not is an ``event_id``, keyed
    ``origin#event_id`` as ``prepare_raw`` does.
    """
    key = event.event_id
    from_file = event.origin.startswith("file:")
    generated = key is not None and (from_file or key.startswith(f"{event.origin}:sha256:"))
    event_id = key
    if generated:  # the directory passes the file's name; a queue without ids, nothing
        event_id = event.origin.removeprefix("file:") if from_file else None
    return intake_mod.RawEvent(
        body=stored_bytes(event),
        origin=event.origin,
        event_id=event_id,
        content_type=event.content_type,
        default_key=key if generated else None,
    )


async def replay(
    intake: intake_mod.Intake, rejected_id: str, *, actor: Actor, reason: str
) -> Replayed:
    """Run one rejected event through today's config; see the module's docstring."""
    store = intake.service.store
    event = await store.get_rejected(rejected_id)
    if event is None:
        raise errors.NotFound(
            f"no rejected event {rejected_id!r} (a replayed event leaves the list; "
            "its audit trail keeps it)",
            details={"rejected_id": rejected_id},
        )
    raw = raw_of(event)
    try:
        source = intake.sources.get(event.source)
    except errors.NotFound as exc:
        raise errors.Conflict(
            f"source {event.source!r} is no longer configured; cannot replay {rejected_id}",
            details={"rejected_id": rejected_id, "source": event.source},
        ) from exc
    try:
        done = await intake.submit(source, raw, actor)
    except errors.Unavailable:
        raise
    except errors.GatewayError as exc:
        await store.replay_failed(
            rejected_id,
            error=exc.message,
            details=exc.details,
            actor=actor,
            reason=reason,
            now=intake.clock.now(),
        )
        error = {"code": exc.code, "message": exc.message, "details": exc.details}
        return Replayed(rejected_id, ReplayOutcome.REJECTED, error=error)
    created = any(r.created for r in done)
    filing_ids = [r.filing.id for r in done]
    await store.replayed(
        rejected_id,
        filing_ids=filing_ids,
        created=created,
        actor=actor,
        reason=reason,
        now=intake.clock.now(),
    )
    outcome = ReplayOutcome.ACCEPTED if created else ReplayOutcome.DUPLICATE
    return Replayed(rejected_id, outcome, filing_ids=filing_ids)
