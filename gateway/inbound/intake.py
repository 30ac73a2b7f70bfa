"""One inbound event → filings (committed) or a rejected-event row. The ack rule lives here.

``Intake`` is the inbound facade the API, the consumers and the CLI call. For queue
messages and dropped files, ``take`` returns only after the filings are committed
(or recognised as duplicates by their idempotency key) or the event is stored in
``rejected_events``; a caller acknowledges then. A ``StoreError`` propagates: the
event was not handled and must stay on the queue (or in the directory).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import structlog

from gateway import errors, ids, models
from gateway.clock import Clock
from gateway.encoding import jsonio
from gateway.inbound import cloudevents
from gateway.inbound.normalizers import EventContext, Source, Sources
from gateway.service import Inbound, Service, Submitted
from gateway.values import Actor

log = structlog.get_logger("gateway.inbound")

MAX_KEY = 255
MAX_KEPT_BODY = 64 * 1024


class Outcome(StrEnum):
    """What became of one queued or dropped event; every outcome may be acknowledged."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Taken:
    """The outcome of ``Intake.take``, with the reason of a rejection."""

    outcome: Outcome
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RawEvent:
    """An event as a queue or a directory delivered it."""

    body: bytes
    origin: str  # amqp:QUEUE, file:NAME
    event_id: str | None = None  # message id, file name
    content_type: str | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    #: the idempotency key of a non-CloudEvent (else ``origin#event_id``), and the
    #: identity under which a rejection is stored once
    default_key: str | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """What one inbound event becomes: filing events with keys, and their provenance."""

    source: Source
    events: list[models.FilingEvent]
    provenance: str
    event_id: str | None

    def inbound(self) -> list[Inbound]:
        return [
            Inbound(event=e, source=self.provenance, source_event_id=self.event_id)
            for e in self.events
        ]


def bounded_key(key: str) -> str:
    """An idempotency key that fits the store (long keys are hashed)."""
    if len(key) <= MAX_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def with_keys(events: list[models.FilingEvent], base: str) -> list[models.FilingEvent]:
    """Give each event without its own key ``base`` (``base/N`` when there are several)."""
    out = []
    for i, event in enumerate(events):
        if event.idempotency_key is not None:
            out.append(event)
            continue
        key = base if len(events) == 1 else f"{base}/{i}"
        out.append(event.model_copy(update={"idempotency_key": bounded_key(key)}))
    return out


def prepare_cloudevent(
    sources: Sources,
    envelope: cloudevents.Envelope,
    *,
    key: str | None = None,
    source: Source | None = None,
) -> Prepared:
    """Normalize one CloudEvent (pure); ``key`` overrides the id+source key."""
    src = source or sources.for_cloudevent(envelope.type, envelope.source)
    context = EventContext(
        source=src.name,
        event_id=envelope.id,
        event_type=envelope.type,
        event_source=envelope.source,
        subject=envelope.subject,
    )
    events = src.normalize(envelope.data, context)
    return Prepared(
        source=src,
        events=with_keys(events, key or envelope.key),
        provenance=f"cloudevents:{envelope.source}",
        event_id=envelope.id,
    )


def prepare_raw(sources: Sources, source: Source, raw: RawEvent) -> Prepared:
    """Decode (CloudEvent or plain JSON) and normalize a queued or dropped event."""
    envelope = cloudevents.from_amqp(raw.headers, raw.content_type, raw.body)
    document: Any = None
    if envelope is None:
        try:  # depth-checked: a message nested 100,000 deep is refused, not a RecursionError
            document = jsonio.loads(raw.body, what="the message")
        except errors.MalformedInput as exc:
            raise errors.InvalidEvent(str(exc), field="body") from exc
        if cloudevents.looks_structured(document):
            envelope = cloudevents.from_document(document)
    if envelope is not None:
        prepared = prepare_cloudevent(sources, envelope, source=source)
        return Prepared(source, prepared.events, raw.origin, envelope.id)
    key = bounded_key(raw.default_key or f"{raw.origin}#{raw.event_id}")
    context = EventContext(source=source.name, event_id=raw.event_id)
    events = with_keys(source.normalize(document, context), key)
    return Prepared(source, events, raw.origin, raw.event_id)


class Intake:
    """Inbound events in, filings (or rejected events) out."""

    def __init__(self, *, service: Service, sources: Sources, clock: Clock) -> None:
        self.service = service
        self.sources = sources
        self.clock = clock

    # --- CloudEvents over HTTP ----------------------------------------------------------

    def prepare_cloudevent(
        self,
        envelope: cloudevents.Envelope,
        *,
        key: str | None = None,
        source: Source | None = None,
    ) -> Prepared:
        """Normalize one CloudEvent (pure); ``key`` overrides the id+source key."""
        return prepare_cloudevent(self.sources, envelope, key=key, source=source)

    async def submit_cloudevent(
        self, envelope: cloudevents.Envelope, *, key: str | None, actor: Actor
    ) -> list[Submitted]:
        prepared = self.prepare_cloudevent(envelope, key=key)
        results = await self.service.submit_batch(prepared.inbound(), actor=actor)
        for r in results:
            if isinstance(r, errors.GatewayError):
                raise r
        return [r for r in results if isinstance(r, Submitted)]

    async def submit_cloudevent_batch(
        self, items: Sequence[cloudevents.Envelope | errors.GatewayError], *, actor: Actor
    ) -> list[list[Submitted] | errors.GatewayError]:
        """Each CloudEvent on its own; the filings of all of them in one transaction."""
        flat: list[Inbound | errors.GatewayError] = []
        spans: list[tuple[int, int] | errors.GatewayError] = []
        for item in items:
            if isinstance(item, errors.GatewayError):
                spans.append(item)
                continue
            try:
                inbound = self.prepare_cloudevent(item).inbound()
            except errors.GatewayError as exc:
                spans.append(exc)
                continue
            spans.append((len(flat), len(flat) + len(inbound)))
            flat.extend(inbound)
        results = await self.service.submit_batch(flat, actor=actor) if flat else []
        out: list[list[Submitted] | errors.GatewayError] = []
        for span in spans:
            if isinstance(span, errors.GatewayError):
                out.append(span)
                continue
            part = results[span[0] : span[1]]
            failed = [r for r in part if isinstance(r, errors.GatewayError)]
            out.append(failed[0] if failed else [r for r in part if isinstance(r, Submitted)])
        return out

    # --- queues and directories -------------------------------------------------------

    def prepare_raw(self, source: Source, raw: RawEvent) -> Prepared:
        """Decode (CloudEvent or plain JSON) and normalize a queued or dropped event."""
        return prepare_raw(self.sources, source, raw)

    async def submit(self, source: Source, raw: RawEvent, actor: Actor) -> list[Submitted]:
        """The filings of one event, all or none: each must be routable before any is
        submitted, and the first refused raises (``GatewayError``)."""
        items = self.prepare_raw(source, raw).inbound()
        for item in items:
            self.service.prepare(item)  # routable? (pure) — all or nothing
        results = await self.service.submit_batch(items, actor=actor)
        for r in results:
            if isinstance(r, errors.GatewayError):
                raise r
        return [r for r in results if isinstance(r, Submitted)]

    async def take(self, source: Source, raw: RawEvent) -> Taken:
        """Commit the filings of one event, or store it as rejected. ``StoreError`` rises."""
        try:
            results = await self.submit(source, raw, Actor(name=f"source:{source.name}"))
        except errors.Unavailable:
            raise
        except errors.GatewayError as exc:
            await self.reject(source, raw, exc)
            return Taken(Outcome.REJECTED, exc.message)
        created = any(r.created for r in results)
        return Taken(Outcome.ACCEPTED if created else Outcome.DUPLICATE)

    async def reject(self, source: Source, raw: RawEvent, exc: errors.GatewayError) -> None:
        try:
            body = raw.body[:MAX_KEPT_BODY].decode("utf-8")
        except UnicodeDecodeError:
            body = "base64:" + base64.b64encode(raw.body[:MAX_KEPT_BODY]).decode()
        event = models.RejectedEvent(
            id=ids.new_id("rej"),
            source=source.name,
            origin=raw.origin,
            event_id=raw.default_key or raw.event_id,
            reason=exc.message,
            details=exc.details,
            body=body,
            content_type=raw.content_type,
            received_at=self.clock.now(),
        )
        stored = await self.service.store.reject_event(event)
        log.warning(
            "event.rejected",
            source=source.name,
            origin=raw.origin,
            event_id=event.event_id,
            reason=exc.message,
            first_time=stored,
        )

    async def list_rejected(
        self, *, source: str | None, limit: int, cursor: str | None
    ) -> tuple[list[models.RejectedEvent], str | None]:
        return await self.service.store.list_rejected(source=source, limit=limit, cursor=cursor)
