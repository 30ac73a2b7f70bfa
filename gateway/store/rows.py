"""Row ↔ model conversion shared by the store implementations. Pure.

Times are stored as integer microseconds since the Unix epoch (UTC), so they sort and
compare as plain integers on every backend.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from gateway import models
from gateway.audit.events import iso as iso
from gateway.records import crypto
from gateway.rules import outages
from gateway.store.fragments import SETTLED

T = TypeVar("T")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def us(when: datetime) -> int:
    return (when - EPOCH) // _US


def us_or_none(when: datetime | None) -> int | None:
    return None if when is None else us(when)


def dt(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def dt_or_none(value: int | None) -> datetime | None:
    return None if value is None else dt(value)


# payloads and receipts are sealed at rest when a key is configured (``crypto``), bound
# to their row: this codec is the one place the store seals and opens them
def dump_payload(payload: dict[str, Any] | str, filing_id: str) -> tuple[str, int]:
    is_json = not isinstance(payload, str)
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False) if is_json else payload
    return crypto.seal_column(str(text), aad=crypto.payload_aad(filing_id)), int(is_json)


def dump_receipt(receipt: Any, filing_id: str, delivery_id: str) -> str:
    return crypto.seal_column(json.dumps(receipt), aad=crypto.receipt_aad(filing_id, delivery_id))


def json_value(stored: Any) -> Any:
    """A JSON column's value: SQLite hands back its text, asyncpg may hand a decoded one."""
    return json.loads(stored) if isinstance(stored, str) else stored


@functools.cache
def columns(text: str) -> tuple[str, ...]:
    """The names of a SELECT's column list: ``f.seq, a.id AS x`` → ``seq``, ``x`` (parsed
    once per list: rows are decoded in streams, the audit trail's by the million)."""
    return tuple(column.split()[-1].rpartition(".")[2] for column in text.split(","))


def build(
    make: Callable[..., T],
    cols: str,
    row: Sequence[Any],
    *,
    skip: tuple[str, ...] = (),
    **decode: Callable[[Any], Any],
) -> T:
    """``make(**fields)`` from a row read by ``SELECT {cols}``: each column fills the field
    of its name, so the SELECT and its decoding share one list and cannot drift apart.
    ``decode``: how a column's stored value becomes its field's (µs → datetime, JSON);
    ``skip``: columns ``make`` has no field for (``seq``, read for paging)."""
    fields = dict(zip(columns(cols), row, strict=True))
    for name in skip:
        del fields[name]
    for name, how in decode.items():
        fields[name] = how(fields[name])
    return make(**fields)


# column order of the filing SELECTs (``fragments.FILING_COLS``, which every one uses):
# seq, id, filing_type, environment, reference, filer_code, idempotency_key, body_hash,
# ordering_key, due_by, content_type, payload, payload_is_json, callback_url, metadata,
# source, received_at, status, at_risk_at, source_event_id
_SHARED = tuple(models.Filing.model_fields.keys() & models.FilingView.model_fields.keys())


def _filing_fields(row: Sequence[Any]) -> dict[str, Any]:
    """What a filing and its view both hold (``_SHARED``), from a filing row."""
    return {
        "id": row[1],
        "filing_type": models.FilingType(row[2]),
        "environment": models.Environment(row[3]),
        "reference": row[4],
        "filer_code": row[5],
        "idempotency_key": row[6],
        "body_hash": row[7],
        "ordering_key": row[8],
        "due_by": dt_or_none(row[9]),
        "metadata": json_value(row[14]),
        "source": row[15],
        "source_event_id": row[19],
        "received_at": dt(row[16]),
    }


def filing(row: Sequence[Any]) -> models.Filing:
    return models.Filing(
        **_filing_fields(row),
        content_type=row[10],
        payload=(json.loads if row[12] else str)(
            crypto.open_column(row[11], aad=crypto.payload_aad(row[1]))
        ),
        callback_url=row[13],
    )


def filing_view(row: Sequence[Any], deliveries: list[models.Delivery]) -> models.FilingView:
    return models.FilingView(
        **_filing_fields(row),
        status=models.FilingStatus(row[17]),
        at_risk=row[18] is not None and row[17] not in SETTLED,
        deliveries=deliveries,
    )


# column order of the delivery SELECTs (``fragments.DELIVERY_COLS``, which every one uses):
# seq, id, filing_id, adapter, state, attempts, available_at, last_error, receipt,
# created_at, updated_at, delivered_at, filing_seq, ack_due_at, ack_overdue, ack,
# ack_conflict
def delivery(row: Sequence[Any]) -> models.Delivery:
    state = models.DeliveryState(row[4])
    waiting = state in (models.DeliveryState.WAITING_RETRY, models.DeliveryState.DEFERRED)
    return models.Delivery(
        id=row[1],
        filing_id=row[2],
        adapter=row[3],
        state=state,
        attempts=row[5],
        next_attempt_at=dt(row[6]) if waiting else None,
        last_error=row[7],
        receipt=json_value(
            row[8] and crypto.open_column(row[8], aad=crypto.receipt_aad(row[2], row[1]))
        ),
        created_at=dt(row[9]),
        updated_at=dt(row[10]),
        delivered_at=dt_or_none(row[11]),
        ack_due_at=dt_or_none(row[13]),
        ack_overdue=bool(row[14]),
        ack=json_value(row[15]),
        ack_conflict=bool(row[16]),
    )


def accepted_view(
    f: models.Filing, deliveries: list[tuple[int, str, str, str]], now_us: int
) -> models.FilingView:
    """The view of a filing just inserted, from what was written (the 202's body without a
    read back): ``deliveries`` are (filing seq, delivery id, adapter, state) as inserted,
    with no attempts yet. Its status is what the deliveries' states derive."""
    # available_at … ack_conflict of a delivery just inserted (``DELIVERY_COLS``' order)
    fresh = (now_us, None, None, now_us, now_us, None, None, None, False, None, False)
    made = [
        delivery((None, d_id, f.id, adapter, state, 0, *fresh))
        for _, d_id, adapter, state in deliveries
    ]
    status = models.derive_status([d.state for d in made])
    return models.FilingView(
        **{name: getattr(f, name) for name in _SHARED},
        status=status,
        at_risk=False,
        deliveries=made,
    )


# column order of the outage SELECTs (``sql/common/outages.sql``):
# id, adapter, environment, starts_at, ends_at, reason, reference, created_at, created_by,
# removed_at
def outage(r: Sequence[Any]) -> outages.Outage:
    return outages.Outage(
        id=r[0],
        adapter=r[1],
        environment=r[2],
        starts_at=dt(r[3]),
        ends_at=dt_or_none(r[4]),
        reason=r[5],
        reference=r[6],
        created_at=dt(r[7]),
        created_by=r[8],
        removed_at=dt_or_none(r[9]),
    )
