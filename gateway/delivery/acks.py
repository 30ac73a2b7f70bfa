"""Acknowledgements in: the service the API calls, and the loops the gateway runs.

``AckService`` stores each ack (correlated, audited, idempotent) through the store, with
``ackrules.Rules.decide`` as the decision applied inside the ack's transaction, and lets
operators resend or close a delivery that waits for an ack.

``AckRunner`` runs beside the dispatcher:

* one ``receive()`` loop per adapter that has one: documents come in, are stored, and
  the adapter hears back ``True`` (stored: e.g. move the file to ``processed/``) or
  ``False`` (unreadable: e.g. move it to ``failed/``) through ``asend``. When the store
  fails the generator is closed without an answer, so the document stays where it was;
* the ack deadline sweep: a delivered delivery past its ``ack_due_at`` is flagged
  ``ack_overdue`` (audited, one log line) and never resent automatically.

Outage hook: ``ack_paused(adapter, now) -> bool``. While it says True for an adapter, the
sweep pushes that adapter's open deadlines forward by the time that passed, so the timer
stands still during the outage. The outages work wires its calendar/breaker in here.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from gateway import config, errors, models
from gateway.clock import Clock
from gateway.delivery import tracing
from gateway.rules import acks as ackrules
from gateway.store.base import Store
from gateway.values import Actor

if TYPE_CHECKING:
    from gateway.delivery import spans

log = structlog.get_logger("gateway.delivery.acks")

MAX_LIST = 500
#: effects after which the dispatcher may have new work (a resend, a released ordering key)
_WAKING = frozenset({"acknowledged", "rejected", "resend_scheduled"})

AckPaused = Callable[[str, datetime], bool]


class AckService:
    """Take acks in, list them, and the operator's resend / close of a waiting delivery."""

    def __init__(
        self,
        *,
        store: Store,
        cfg: config.Config,
        clock: Clock,
        on_new_work: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.rules = ackrules.Rules(cfg)
        self._on_new_work = on_new_work or (lambda: None)
        #: OpenTelemetry (``tracing.build``); None: no span work at all
        self.tracer: spans.Tracer | None = None

    async def receive_document(
        self, content_type: str, body: bytes | str, *, actor: Actor, source: str
    ) -> list[models.AckRecord]:
        """Parse one document (JSON or TA1/997/999) and store every ack in it; a document
        with X12 envelope faults is also kept as a problem document (rejected events)."""
        now = self.clock.now()
        reading = ackrules.read_document(content_type, body, source=source, now=now)
        records = await self.record(reading.acks, actor=actor)
        if reading.problems:
            await self.keep_problem(
                body,
                content_type=content_type,
                origin=source,
                reason=ackrules.envelope_reason(reading.problems),
                details=[p.as_detail() for p in reading.problems],
            )
        return records

    async def keep_problem(
        self,
        body: bytes | str,
        *,
        content_type: str,
        origin: str,
        reason: str,
        details: list[dict[str, Any]],
    ) -> None:
        """Keep an ack document that is faulty or unreadable where operators list them."""
        event = ackrules.problem_document(
            body,
            content_type=content_type,
            origin=origin,
            reason=reason,
            details=details,
            now=self.clock.now(),
        )
        first = await self.store.reject_event(event)
        log.warning("ack.document_problem", origin=origin, reason=reason, first_time=first)

    async def record(self, acks: list[models.Ack], *, actor: Actor) -> list[models.AckRecord]:
        out = []
        for ack in acks:
            record = await self.store.record_ack(
                ack, decide=self.rules.decide, actor=actor, now=self.clock.now()
            )
            out.append(record)
            if self.tracer is not None and record.filing_id and not record.duplicate:
                await self._trace(record, ack)
            fields: dict[str, Any] = {
                "ack_id": record.id,
                "effect": record.effect,
                "delivery_id": record.delivery_id,
                "filing_id": record.filing_id,
                "kind": ack.kind,
                "codes": ack.codes,
                "source": ack.source,
            }
            if record.duplicate:
                log.info("ack.duplicate", **fields)
            elif not record.matched:
                log.warning("ack.unmatched", **fields)
            else:
                log.info("ack.recorded", **fields)
        if any(r.effect in _WAKING and not r.duplicate for r in out):
            self._on_new_work()
        return out

    async def _trace(self, record: models.AckRecord, ack: models.Ack) -> None:
        """The ack's span, in the trace of the filing it answers."""
        view = await self.store.get_filing(record.filing_id) if record.filing_id else None
        if view is not None and self.tracer is not None:
            self.tracer.ack(tracing.carrier_of(view.metadata), record, ack)

    async def list(
        self, *, matched: bool | None = None, filing_id: str | None = None, limit: int = 50
    ) -> list[models.AckRecord]:
        return await self.store.list_acks(
            matched=matched, filing_id=filing_id, limit=max(1, min(limit, MAX_LIST))
        )

    async def resend(self, filing_id: str, *, actor: Actor, reason: str) -> builtins.list[str]:
        """Send a sent filing again (delivered, acknowledged or rejected): same filing and
        delivery id, a new interchange. The receiver may already hold it, so a reason is
        required and goes into the audit trail."""
        if not reason.strip():
            raise errors.InvalidInput(
                "a resend needs a reason; it goes into the audit trail",
                details=[{"loc": "body.reason", "msg": "required"}],
            )
        action = await self.store.resend_filing(
            filing_id, actor=actor, now=self.clock.now(), reason=reason
        )
        log.warning(
            "filing.resent", filing_id=filing_id, deliveries=action.changed, actor=actor.name
        )
        self._on_new_work()
        return action.changed

    async def close(self, filing_id: str, *, actor: Actor, reason: str) -> builtins.list[str]:
        """Stop waiting for an ack (the operator saw the answer elsewhere, or gave up)."""
        action = await self.store.close_ack(
            filing_id, actor=actor, now=self.clock.now(), reason=reason
        )
        log.info(
            "filing.ack_closed", filing_id=filing_id, deliveries=action.changed, actor=actor.name
        )
        self._on_new_work()
        return action.changed


class AckRunner:
    """The adapters' ``receive()`` loops and the ack deadline sweep."""

    def __init__(
        self,
        *,
        service: AckService,
        store: Store,
        adapters: Mapping[str, Any],
        cfg: config.Config,
        clock: Clock,
        ack_paused: AckPaused | None = None,
    ) -> None:
        self.service = service
        self.store = store
        self.adapters = dict(adapters)
        self.section = cfg.acks
        self.clock = clock
        self.ack_paused = ack_paused
        self.received = 0

    async def run(self) -> None:
        """Run until cancelled."""
        async with anyio.create_task_group() as tg:
            for name, adapter in self.adapters.items():
                if callable(getattr(adapter, "receive", None)):
                    tg.start_soon(self._receive_loop, name, adapter)
            tg.start_soon(self._sweep_loop)

    # --- receive ----------------------------------------------------------------------

    async def _receive_loop(self, name: str, adapter: Any) -> None:
        while True:
            try:
                await self._receive(name, adapter)
            except errors.StoreError as exc:
                log.error("ack.receive_store_failed", adapter=name, error=str(exc))
            except Exception as exc:  # a broken receive() is logged and restarted, not fatal
                log.error("ack.receive_failed", adapter=name, error=repr(exc))
            await anyio.sleep(self.section.inbox_poll)

    async def _receive(self, name: str, adapter: Any) -> None:
        documents = adapter.receive()
        try:
            doc = await documents.__anext__()
            while True:
                ok = await self._take(name, doc)
                doc = await documents.asend(ok)
        except StopAsyncIteration:
            return
        finally:
            with anyio.CancelScope(shield=True):
                await documents.aclose()

    async def _take(self, name: str, doc: models.InboundDocument) -> bool:
        """Store one received document; False when it is unreadable (kept aside, audited)."""
        actor = Actor(name=f"adapter:{name}")
        try:
            await self.service.receive_document(
                doc.content_type, doc.body, actor=actor, source=f"{name}:{doc.name}"
            )
        except (errors.InvalidInput, errors.MalformedInput) as exc:
            log.error("ack.unreadable", adapter=name, document=doc.name, error=str(exc))
            await self.service.keep_problem(
                doc.body,
                content_type=doc.content_type,
                origin=f"{name}:{doc.name}",
                reason=str(exc),
                details=exc.details if isinstance(exc.details, list) else [],
            )
            await self.store.append_audit(
                "ack.unreadable",
                actor=actor,
                now=self.clock.now(),
                details={"adapter": name, "document": doc.name, "error": str(exc)},
            )
            return False
        self.received += 1
        return True

    # --- deadlines --------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        last = self.clock.now()
        while True:
            await anyio.sleep(self.section.overdue_scan)
            now = self.clock.now()
            try:
                await self.sweep(now, elapsed_s=(now - last).total_seconds())
            except errors.StoreError as exc:
                log.error("ack.sweep_failed", error=str(exc))
            last = now

    async def sweep(self, now: datetime, *, elapsed_s: float = 0.0) -> int:
        """Pause deadlines of adapters in an outage, then flag what is overdue."""
        if self.ack_paused is not None and elapsed_s > 0:
            for name in self.adapters:
                if self.ack_paused(name, now):
                    await self.store.extend_ack_deadlines(name, by_s=elapsed_s, now=now)
        flagged = await self.store.flag_overdue(now=now)
        for delivery_id, filing_id, adapter in flagged:
            log.warning(
                "delivery.ack_overdue",
                delivery_id=delivery_id,
                filing_id=filing_id,
                adapter=adapter,
                note="no acknowledgement by the route's ack_within; resend or close it",
            )
        return len(flagged)
