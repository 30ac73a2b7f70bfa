"""What the SQLite and PostgreSQL transaction bodies build alike, whatever the SQL dialect:
the details of some audit rows and the body of a status callback. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from gateway import errors, models
from gateway.rules import lifecycle, outages
from gateway.rules.acks import AckDecision, AckTarget
from gateway.store import rows, values

_E = lifecycle.Event
_S = models.DeliveryState

#: a send recorded after its lease was lost moves these to delivered (the rest: history)
LATE_SENT_MOVES = frozenset(lifecycle.sources(_E.SENT, to=_S.DELIVERED)) - {_S.IN_FLIGHT}


def deferred_details(reason: str, until: datetime, probe_failed: bool) -> dict[str, Any]:
    """Details of a ``delivery.deferred`` audit row written by the dispatcher's defer."""
    details: dict[str, Any] = {"reason": reason, "until": rows.iso(until)}
    if probe_failed:
        details["probe_failed"] = True
    return details


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


def refuse_in_flight(
    filing_id: str, event: lifecycle.Event, deliveries: Iterable[tuple[str, str, datetime]]
) -> None:
    """Raise 409 ``delivery_in_flight`` when a delivery of the filing is being sent.

    ``deliveries`` are (delivery id, state, available_at): an in-flight delivery's
    ``available_at`` is its lease's end, the moment the send's outcome is known at the
    latest (a stalled sender's lease runs out and the delivery is claimed again).
    """
    busy = [(d, at) for d, state, at in deliveries if state == _S.IN_FLIGHT.value]
    refusal = lifecycle.refusal([_S.IN_FLIGHT] if busy else [], event)
    if refusal is None:
        return
    until = max(at for _, at in busy)
    raise errors.Refused(
        refusal.code,
        f"filing {filing_id}: {refusal.why}; try again after {rows.iso(until)}",
        details={
            "id": filing_id,
            "deliveries": [d for d, _ in busy],
            "retry_after": rows.iso(until),
        },
    )


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
        "starts_at": rows.iso(o.starts_at),
        "ends_at": None if o.ends_at is None else rows.iso(o.ends_at),
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


def bulk_filter(flt: values.BulkFilter) -> dict[str, Any]:
    """The filter of a bulk retry or cancel, as its ``operator.bulk_*`` audit row records it."""
    out: dict[str, Any] = {
        "state": None if flt.state is None else flt.state.value,
        "adapter": flt.adapter,
        "filing_type": None if flt.filing_type is None else flt.filing_type.value,
        "environment": None if flt.environment is None else flt.environment.value,
        "not_after": None if flt.not_after is None else rows.iso(flt.not_after),
    }
    for name, allowed in (("filer_codes", flt.filer_codes), ("environments", flt.environments)):
        if allowed is not None:  # a token limited to filers: its set, sorted
            out[name] = sorted(allowed)
    return out


def callback_event(
    f: Sequence[Any],
    delivery_rows: Iterable[Sequence[Any]],
    previous: str,
    status: str,
    now_us: int,
) -> tuple[str, dict[str, Any]]:
    """The event name and body of a status callback. ``f`` is the filing's (id, filing_type,
    environment, reference, …); each delivery row is (id, adapter, state, ack JSON or None)."""
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
        "timestamp": rows.iso(rows.dt(now_us)),
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
