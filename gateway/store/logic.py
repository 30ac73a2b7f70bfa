"""What the SQLite and PostgreSQL transaction bodies build alike, whatever the SQL dialect:
the details of some audit rows and the body of a status callback. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from gateway import models, outages
from gateway.store import base, rows


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


def bulk_filter(flt: base.BulkFilter) -> dict[str, Any]:
    """The filter of a bulk retry or cancel, as its ``operator.bulk_*`` audit row records it."""
    return {
        "state": None if flt.state is None else flt.state.value,
        "adapter": flt.adapter,
        "filing_type": None if flt.filing_type is None else flt.filing_type.value,
        "environment": None if flt.environment is None else flt.environment.value,
        "not_after": None if flt.not_after is None else rows.iso(flt.not_after),
    }


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
