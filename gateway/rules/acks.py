"""Acknowledgement rules: documents → ``Ack``s, and what an ack does to its delivery. Pure.

* ``parse_document``: a JSON ack (one object or a list), a JSON wrapper holding an X12
  document, or a raw TA1/997/999 interchange → ``Ack``s, each keeping the raw text.
* ``decide``: accepted/warning → acknowledged; rejected with a code configured as an
  infrastructure failure (``[acks] resubmit_codes``, e.g. ACE ``E90``) → resend at the
  retry policy's time; any other rejection → rejected. Unsolicited messages, and acks for
  deliveries not waiting for one, are history only: a final state never changes.
* ``expectation``: the route options a delivered delivery carries (``ack_within``,
  ``order_until``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from gateway import config, errors, ids, models
from gateway.encoding import x12, x12read
from gateway.rules import lifecycle, retry, router


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


X12_CONTENT_TYPES = frozenset({"application/edi-x12", "application/x12", "text/x12"})
MAX_ACKS_PER_DOCUMENT = 1000
S = models.DeliveryState


def party(qualifier: str, ident: str) -> str:
    """The store's key of an X12 party: ``ZZ:MAEU`` (qualifier, id without padding)."""
    return f"{qualifier.strip()}:{ident.strip()}"


def _is_x12(content_type: str, text: str) -> bool:
    return content_type.split(";")[0].strip().lower() in X12_CONTENT_TYPES or (
        text.lstrip().startswith("ISA")
    )


@dataclass(frozen=True, slots=True)
class Reading:
    """The acks of a document, and the envelope faults found reading it (X12 only)."""

    acks: list[models.Ack]
    problems: list[x12read.EnvelopeError] = field(default_factory=list)


def parse_document(
    content_type: str, body: bytes | str, *, source: str, now: datetime
) -> list[models.Ack]:
    """The acks in one document; ``MalformedInput`` (400) when it is neither JSON nor X12,
    ``InvalidInput`` (422) when it is but holds no valid ack."""
    return read_document(content_type, body, source=source, now=now).acks


def read_document(content_type: str, body: bytes | str, *, source: str, now: datetime) -> Reading:
    """``parse_document`` that also hands back the envelope faults of an X12 document."""
    try:  # utf-8-sig: a byte-order mark before ISA or { is no part of the document
        text = body.decode("utf-8-sig") if isinstance(body, bytes) else body
    except UnicodeDecodeError as exc:
        raise errors.InvalidInput("an ack document must be UTF-8 text") from exc
    text = text.removeprefix(x12.BOM)
    if not text.strip():
        raise errors.InvalidInput("the ack document is empty")
    if _is_x12(content_type, text) and not text.lstrip().startswith(("{", "[")):
        return read_x12(text, source=source, now=now)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise errors.MalformedInput(f"an ack is JSON or a TA1/997/999 document: {exc}") from exc
    return from_json_reading(data, source=source, now=now)


def from_json(data: Any, *, source: str, now: datetime) -> list[models.Ack]:
    return from_json_reading(data, source=source, now=now).acks


def from_json_reading(data: Any, *, source: str, now: datetime) -> Reading:
    """JSON acks, or JSON wrappers each holding an X12 document."""
    items = data if isinstance(data, list) else [data]
    if not items or len(items) > MAX_ACKS_PER_DOCUMENT:
        raise errors.InvalidInput(f"send 1 to {MAX_ACKS_PER_DOCUMENT} acks")
    out: list[models.Ack] = []
    problems: list[x12read.EnvelopeError] = []
    for i, item in enumerate(items):
        loc = f"[{i}]" if isinstance(data, list) else "body"
        if not isinstance(item, dict):
            raise errors.InvalidInput(
                "an ack is a JSON object", details=[{"loc": loc, "msg": "expected an object"}]
            )
        if "document" in item:  # {"content_type": "application/edi-x12", "document": "ISA…"}
            doc = item["document"]
            if not isinstance(doc, str) or set(item) - {"document", "content_type"}:
                raise errors.InvalidInput(
                    "a wrapped ack holds only `document` (text) and `content_type`",
                    details=[{"loc": loc, "msg": "document"}],
                )
            reading = read_x12(doc, source=source, now=now)
            out.extend(reading.acks)
            problems.extend(reading.problems)
            continue
        fields = {k: v for k, v in item.items() if k not in ("kind", "source", "received_at")}
        try:
            ack = models.Ack.model_validate(
                {**fields, "source": source, "received_at": now, "kind": "json"}
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or loc
            msg = first["msg"].removeprefix("Value error, ")
            raise errors.InvalidInput(
                f"{where}: {msg}", details=[{"loc": where, "msg": msg}]
            ) from exc
        if ack.raw is None:
            ack = ack.model_copy(update={"raw": json.dumps(item, sort_keys=True)})
        out.append(ack)
    return Reading(out, problems)


def from_x12(text: str, *, source: str, now: datetime) -> list[models.Ack]:
    """Every TA1 / 997 / 999 answer in an X12 file, correlated by control number."""
    return read_x12(text, source=source, now=now).acks


def read_x12(text: str, *, source: str, now: datetime) -> Reading:
    """Each interchange of the file read with its own ISA: its parties, usage and delimiters.

    Envelope faults are reported, not fatal: the answers that can be read are kept. When
    no interchange holds a readable answer, ``X12Error`` (422) lists every fault."""
    document = x12read.read(text)
    acks: list[models.Ack] = []
    problems = list(document.errors)
    for interchange in document.interchanges:
        isa = interchange.isa
        if len(isa) < 17:
            continue  # reported by x12read (024)
        try:
            parsed = x12.acks_in(interchange.segments)
        except x12.X12Error as exc:
            problems.append(
                x12read.EnvelopeError(
                    interchange.first_position, "ISA", "interchange", "no_ack", exc.message
                )
            )
            continue
        theirs, ours = party(isa[5], isa[6]), party(isa[7], isa[8])
        usage = isa[15].strip() if isa[15].strip() in ("T", "P") else None
        for p in parsed:
            try:
                acks.append(
                    models.Ack(
                        kind=p.kind,
                        outcome=models.AckOutcome(p.outcome),
                        interchange_control=p.interchange_control,
                        group_control=p.group_control,
                        set_control=p.set_control,
                        codes=p.codes,
                        message=p.message,
                        x12_sender=ours,
                        x12_receiver=theirs,
                        usage=usage,  # type: ignore[arg-type]
                        raw=interchange.text,
                        source=source,
                        received_at=now,
                    )
                )
            except ValidationError as exc:  # a control number out of range, a long AK202…
                first = exc.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                problems.append(
                    x12read.EnvelopeError(
                        interchange.first_position,
                        "ISA",
                        "interchange",
                        "invalid_ack",
                        f"a {p.kind} answer is unusable: {where}: {first['msg']}",
                    )
                )
    if not acks:
        why = problems[0].message if problems else "no acknowledgement in the document"
        raise x12.X12Error(
            f"no readable TA1, 997 or 999 answer: {why}",
            details=[p.as_detail() for p in problems],
        )
    return Reading(acks, problems)


PROBLEM_SOURCE = "acks"
MAX_KEPT_DOCUMENT = 64 * 1024


def problem_document(
    body: bytes | str,
    *,
    content_type: str,
    origin: str,
    reason: str,
    details: list[dict[str, Any]],
    now: datetime,
) -> models.RejectedEvent:
    """An ack document with envelope faults (or none readable), to keep and show.

    Kept once per content (``event_id`` is its hash) under source ``acks``, listed by
    ``GET /v1/rejected-events?source=acks`` with each fault and its segment position."""
    raw = body.encode() if isinstance(body, str) else body
    try:
        text = raw[:MAX_KEPT_DOCUMENT].decode("utf-8")
    except UnicodeDecodeError:
        text = "base64:" + base64.b64encode(raw[:MAX_KEPT_DOCUMENT]).decode()
    return models.RejectedEvent(
        id=ids.new_id("rej"),
        source=PROBLEM_SOURCE,
        origin=origin,
        event_id="sha256:" + hashlib.sha256(raw).hexdigest(),
        reason=reason,
        details=details,
        body=text,
        content_type=content_type or None,
        received_at=now,
    )


def envelope_reason(problems: Sequence[x12read.EnvelopeError]) -> str:
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    where = f"segment {first.position} ({first.segment})"
    return f"X12 envelope error at {where}: {first.message}{more}"


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
