"""What the store's audit rows say: the trail's time spelling and the details of the rows
whose shape is more than a few fields (a filing accepted, an outage, a rejected event, an
ack conflict, a defer, a bulk action's filter). Pure: the store's bodies call them inside
their transactions, so the details are written the same on both backends.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway import models, values
from gateway.rules import outages
from gateway.rules.acks import AckDecision, AckTarget


def iso(when: datetime) -> str:
    """The trail's time spelling (sorts as text): ``2026-01-06T12:00:00.000000Z``."""
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


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
