"""What the store's audit rows say and how they chain: the rows one transaction appends
(``Rows``: collected, redacted, then linked onto the chain's head), the trail's time
spelling, and the details of the rows whose shape is more than a few fields (a filing
accepted, an outage, a rejected event, an ack conflict, a defer, a bulk action's filter).
Pure: the store's bodies use them inside their transactions (``store.trail.Trail`` adds the
writing), so the rows are built the same on both backends.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway import models, values
from gateway.audit import chain, redact
from gateway.rules import outages
from gateway.rules.acks import AckDecision, AckTarget


def iso(when: datetime) -> str:
    """The trail's time spelling (sorts as text): ``2026-01-06T12:00:00.000000Z``."""
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Rows:
    """Audit rows of one transaction, in append order; ``chain`` links them onto a head.

    Details get the actor's ``request_id`` and then pass through the redactor before they
    are hashed, so the chain holds only the masked values.
    """

    def __init__(self, now: datetime, redactor: redact.Redactor) -> None:
        self.at = iso(now)
        self.redactor = redactor
        #: (at, event, actor, filing_id, delivery_id, details), in append order
        self.items: list[tuple[str, str, str, str | None, str | None, dict[str, Any]]] = []

    def add(
        self,
        event: str,
        *,
        actor: values.Actor,
        filing_id: str | None = None,
        delivery_id: str | None = None,
        details: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> None:
        """Collect one row; ``now``: its own time when it differs from the trail's
        (a coalesced transaction of several callers)."""
        details = dict(details or {})
        if actor.request_id:
            details.setdefault("request_id", actor.request_id)
        details = self.redactor.value(details)
        at = self.at if now is None else iso(now)
        self.items.append((at, event, actor.name, filing_id, delivery_id, details))

    def extend(self, other: Rows) -> None:
        """Take over ``other``'s collected rows (already redacted), after these."""
        self.items += other.items
        other.items = []

    def chain(self, head: tuple[int, str]) -> list[tuple[Any, ...]]:
        """The rows as the audit table holds them, linked onto ``head`` (its seq and hash):
        (seq, at, actor, filing_id, delivery_id, event, details JSON, prev_hash, hash)."""
        seq, prev = head
        out: list[tuple[Any, ...]] = []
        for at, event, actor, filing_id, delivery_id, details in self.items:
            seq += 1
            text = chain.canonical(details)  # serialised once: stored and hashed
            h = chain.row_hash_of_canonical(
                prev,
                seq=seq,
                at=at,
                actor=actor,
                filing_id=filing_id,
                delivery_id=delivery_id,
                event=event,
                details_json=text,
            )
            out.append((seq, at, actor, filing_id, delivery_id, event, text, prev, h))
            prev = h
        return out


def accepted_details(f: models.Filing, adapters: list[str]) -> dict[str, Any]:
    """Details of the ``filing.accepted`` audit row."""
    return {
        "filing_type": f.filing_type.value,
        "environment": f.environment.value,
        "reference": f.reference,
        "filer_code": f.filer_code,
        "body_hash": f.body_hash,
        "source": f.source,
        "source_event_id": f.source_event_id,
        "adapters": adapters,
    }


def outage_details(o: outages.Outage) -> dict[str, Any]:
    """Details of the ``outage.added`` / ``outage.removed`` audit rows."""
    return {
        "outage_id": o.id,
        "adapter": o.adapter,
        "environment": None if o.environment is None else o.environment.value,
        "starts_at": iso(o.starts_at),
        "ends_at": None if o.ends_at is None else iso(o.ends_at),
        "reason": o.reason,
        "reference": o.reference,
    }


def rejected_details(event: models.RejectedEvent) -> dict[str, Any]:
    """Details of the ``event.rejected`` audit row."""
    return {
        "rejected_id": event.id,
        "source": event.source,
        "origin": event.origin,
        "event_id": event.event_id,
        "reason": event.reason,
    }


def received_details(ack: models.Ack, ack_id: str, effect: str) -> dict[str, Any]:
    """Details of the ``ack.received`` audit row (every ack stored, whatever it did)."""
    return {
        "ack_id": ack_id,
        "kind": ack.kind,
        "outcome": None if ack.outcome is None else ack.outcome.value,
        "codes": ack.codes,
        "unsolicited": ack.unsolicited,
        "effect": effect,
        "source": ack.source,
    }


def conflict_details(
    target: AckTarget, ack_id: str, ack: models.Ack, decision: AckDecision
) -> dict[str, Any]:
    """Details of the ``delivery.ack_conflict`` audit row (a flag, not a move)."""
    return {
        "adapter": target.adapter,
        "ack_id": ack_id,
        "outcome": None if ack.outcome is None else ack.outcome.value,
        "codes": ack.codes,
        "state": target.state.value,
        "note": decision.error,
    }


def deferred_details(reason: str, until: datetime, probe_failed: bool) -> dict[str, Any]:
    """Details of a ``delivery.deferred`` audit row written by the dispatcher's defer."""
    details: dict[str, Any] = {"reason": reason, "until": iso(until)}
    if probe_failed:
        details["probe_failed"] = True
    return details


def bulk_filter(flt: values.BulkFilter) -> dict[str, Any]:
    """The filter of a bulk retry or cancel, as its ``operator.bulk_*`` audit row records it."""
    out: dict[str, Any] = {
        "state": None if flt.state is None else flt.state.value,
        "adapter": flt.adapter,
        "filing_type": None if flt.filing_type is None else flt.filing_type.value,
        "environment": None if flt.environment is None else flt.environment.value,
        "not_after": None if flt.not_after is None else iso(flt.not_after),
    }
    for name, allowed in (("filer_codes", flt.filer_codes), ("environments", flt.environments)):
        if allowed is not None:  # a token limited to filers: its set, sorted
            out[name] = sorted(allowed)
    return out
