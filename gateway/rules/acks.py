"""Acknowledgement rules: documents → ``Ack``s, and what an ack does to its delivery. Pure.

* ``parse_document``: a JSON ack (one object or a list), a JSON wrapper holding an X12
  document, or a raw TA1/997/999 interchange → ``Ack``s, each keeping the raw text.
* ``decide``: accepted/warning → acknowledged; rejected with a code configured as an
  infrastructure failure (``[acks] resubmit_codes``, e.g. ACE ``E90``) → resend at the
  retry policy's time; any other rejection → rejected. Unsolicited messages, and acks for
  deliveries not waiting for one, are history only: a final state never changes.
* ``expectation``: the route options a delivered delivery carries (``ack_within``,
  ``order_until``).

Reading documents lives in ``gateway.rules.ackdocs`` (JSON, dispatch) and
``gateway.rules.ackx12`` (X12, problem documents); their names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway import config, models
from gateway.rules import lifecycle, retry, router
from gateway.rules.ackdocs import (
    MAX_ACKS_PER_DOCUMENT,
    X12_CONTENT_TYPES,
    from_json,
    from_json_reading,
    is_x12,
    parse_document,
    read_document,
)
from gateway.rules.ackx12 import (
    MAX_KEPT_DOCUMENT,
    PROBLEM_SOURCE,
    Reading,
    envelope_reason,
    from_x12,
    party,
    problem_document,
    read_x12,
)

__all__ = [
    "MAX_ACKS_PER_DOCUMENT",
    "MAX_KEPT_DOCUMENT",
    "PROBLEM_SOURCE",
    "X12_CONTENT_TYPES",
    "AckDecision",
    "AckTarget",
    "Reading",
    "Rules",
    "envelope_reason",
    "expectation",
    "from_json",
    "from_json_reading",
    "from_x12",
    "is_x12",
    "parse_document",
    "party",
    "problem_document",
    "read_document",
    "read_x12",
]


@dataclass(frozen=True, slots=True)
class AckTarget:
    """The delivery an ack was correlated to, as the ack decision needs to see it."""

    delivery_id: str
    filing_id: str
    adapter: str
    state: models.DeliveryState
    attempts: int
    filing_received_at: datetime
    #: the attempt the ack answers, when its X12 control numbers say (else None)
    answers_attempt: int | None = None


@dataclass(frozen=True, slots=True)
class AckDecision:
    """What an ack does to its delivery: a new state (or none: history only)."""

    effect: str
    state: models.DeliveryState | None = None
    at: datetime | None = None
    error: str | None = None


S = models.DeliveryState


class Rules:
    """``decide`` bound to the config: resubmit codes and each adapter's retry policy.

    An ack names a lifecycle event (accepted/warning → ``ack_accepted``; a rejection with
    a resubmit code → ``ack_resubmit``; any other → ``ack_rejected``) and the table says
    what it does. Acks only move forward: after a positive ack a negative one is a
    conflict (flagged, nothing else changes), and a resubmission happens only from
    ``delivered``, once per distinct ack (duplicates are caught by fingerprint), for the
    attempt it answers (a late negative ack for an earlier attempt is history), and
    within the attempt budget (past it the rejection stands).
    """

    def __init__(self, cfg: config.Config) -> None:
        self.resubmit: frozenset[str] = frozenset(cfg.acks.resubmit_codes)
        self.policies = {name: retry.RetryPolicy(cfg.retry_for(name)) for name in cfg.adapters}
        self.fallback = retry.RetryPolicy(cfg.retry)

    def event_of(self, ack: models.Ack) -> lifecycle.Event:
        """The lifecycle event an ack is."""
        if ack.outcome is not models.AckOutcome.REJECTED:
            return lifecycle.Event.ACK_ACCEPTED
        if self.resubmit.intersection(ack.codes):
            return lifecycle.Event.ACK_RESUBMIT
        return lifecycle.Event.ACK_REJECTED

    def decide(self, ack: models.Ack, target: AckTarget, now: datetime) -> AckDecision:
        """What one correlated ack does to its delivery."""
        if ack.unsolicited:
            return AckDecision("history")
        event = self.event_of(ack)
        codes = ", ".join(ack.codes) or "no code"
        why = f"rejected by the receiver ({codes})" + (f": {ack.message}" if ack.message else "")
        stale = target.answers_attempt is not None and target.answers_attempt < target.attempts
        if stale and event is not lifecycle.Event.ACK_ACCEPTED:
            return AckDecision("history")  # it answers an earlier transmission
        outcome = lifecycle.step(target.state, event)
        if outcome is lifecycle.CONFLICT:
            said = "accepted" if event is lifecycle.Event.ACK_ACCEPTED else why
            return AckDecision(
                "conflict", error=f"conflicting acknowledgement ({said}) on a {target.state}"
            )
        if not isinstance(outcome, S):
            return AckDecision("history")
        if outcome is S.ACKNOWLEDGED:
            return AckDecision("acknowledged", S.ACKNOWLEDGED)
        if outcome is S.WAITING_RETRY:
            policy = self.policies.get(target.adapter, self.fallback)
            decision = policy.decide(
                attempts=target.attempts, now=now, first_seen=target.filing_received_at
            )
            if decision is not None:
                return AckDecision(
                    "resend_scheduled", S.WAITING_RETRY, at=decision.at, error=f"{why}; resending"
                )
            reason = policy.give_up_reason(
                attempts=target.attempts, now=now, first_seen=target.filing_received_at
            )
            outcome = lifecycle.step(target.state, lifecycle.Event.ACK_REJECTED)
            # a resubmit moved it from delivered, where a rejection moves it to rejected
            assert isinstance(outcome, S), outcome
            why = f"{why}; {reason}"
        return AckDecision("rejected", outcome, error=why)


def expectation(
    routes: Sequence[config.RouteConfig], filing: models.Filing, adapter: str
) -> tuple[float | None, bool]:
    """(seconds within which an ack is due or None, hold the ordering key until acked)."""
    mine = [r for r in routes if adapter in r.adapters and router.matches(r, filing)]
    within = [r.ack_within for r in mine if r.ack_within is not None]
    hold = any(r.order_until == "acknowledged" for r in mine)
    return (min(within) if within else None), hold
