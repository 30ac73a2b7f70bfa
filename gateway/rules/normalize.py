"""Inbound event → canonical ``Filing``. Pure: the id and the time are handed in."""

from __future__ import annotations

from datetime import datetime

from gateway import errors, models


def resolve_idempotency_key(event: models.FilingEvent, header: str | None) -> str | None:
    """The key from the body or the ``Idempotency-Key`` header; both must agree."""
    if header is not None:
        header = header.strip()
        if not header or len(header) > 255:
            raise errors.InvalidInput(
                "Idempotency-Key header must be 1 to 255 characters",
                details=[{"loc": "header.Idempotency-Key", "msg": "1 to 255 characters"}],
            )
    if header and event.idempotency_key and header != event.idempotency_key:
        raise errors.InvalidInput(
            "Idempotency-Key header and body idempotency_key differ",
            details=[{"loc": "idempotency_key", "msg": "differs from the Idempotency-Key header"}],
        )
    return event.idempotency_key or header or None


def normalize(
    event: models.FilingEvent,
    *,
    filing_id: str,
    received_at: datetime,
    source: str = "api",
    idempotency_header: str | None = None,
    source_event_id: str | None = None,
) -> models.Filing:
    """The canonical filing for an inbound event."""
    content_type = event.content_type or (
        models.JSON_CONTENT_TYPE if isinstance(event.payload, dict) else models.TEXT_CONTENT_TYPE
    )
    return models.Filing(
        id=filing_id,
        filing_type=event.filing_type,
        environment=event.environment,
        reference=event.reference.strip(),
        filer_code=event.filer_code.upper(),
        idempotency_key=resolve_idempotency_key(event, idempotency_header),
        ordering_key=event.ordering_key or event.reference.strip(),
        due_by=event.due_by,
        payload=event.payload,
        content_type=content_type,
        callback_url=event.callback_url,
        metadata=event.metadata,
        body_hash=event.body_hash(),
        source=source,
        source_event_id=source_event_id,
        received_at=received_at,
    )
