"""The facade the HTTP API and the CLI call: submit, read, retry, cancel, adapters.

It owns no I/O of its own: it normalizes and routes (pure), then asks the store.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from gateway import config, errors, ids, metrics, models
from gateway.audit import chain as audit
from gateway.clock import Clock
from gateway.delivery import acks, ssrf
from gateway.rules import normalize, outages, router
from gateway.store import base
from gateway.store.base import Actor, Store

log = structlog.get_logger("gateway.service")

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class Submitted:
    """A filing as the submitter gets it back; ``created`` is False for a duplicate."""

    filing: models.FilingView
    created: bool


@dataclass(frozen=True, slots=True)
class Inbound:
    """One event to submit, with what came beside it (header key, source)."""

    event: models.FilingEvent
    idempotency_header: str | None = None
    source: str = "api"
    #: the original event's id (CloudEvent id, message id, file name), for provenance
    source_event_id: str | None = None


class Service:
    """What the gateway can be asked to do."""

    def __init__(
        self,
        *,
        store: Store,
        cfg: config.Config,
        clock: Clock,
        adapters: Mapping[str, Any] | None = None,
        on_new_work: Callable[[], None] | None = None,
        metrics: metrics.Metrics | None = None,
        check_callback: Callable[[str], Awaitable[Any]] | None = None,
    ) -> None:
        self.store = store
        self.cfg = cfg
        self.clock = clock
        self.adapters = dict(adapters or {})
        self._on_new_work = on_new_work or (lambda: None)
        self.metrics = metrics
        self.shutting_down = False
        #: filings between intake and their commit (bounded by [gateway] max_pending_intake)
        self.pending_intake = 0
        self.dispatcher_running: Callable[[], bool] = lambda: True
        #: breaker, gate and pacing per adapter (set by the server from the dispatcher)
        self.outage_status: Callable[[], dict[str, dict[str, Any]]] = dict
        #: inbound sources' health for /readyz (reported, never makes the gateway unready)
        self.source_status: Callable[[], dict[str, Any]] = dict
        #: refuses (422) a callback_url the SSRF guard or the secrets config refuses
        self.check_callback = (
            check_callback or ssrf.HostPolicy(cfg.callbacks.allowed_hosts).check_url
        )
        self.acks = acks.AckService(
            store=store, cfg=cfg, clock=clock, on_new_work=self._on_new_work
        )

    # --- intake -----------------------------------------------------------------------

    def prepare(self, item: Inbound) -> base.NewFiling:
        """Normalize and route one event (pure; raises InvalidInput / Unroutable)."""
        filing = normalize.normalize(
            item.event,
            filing_id=ids.new_id("fil"),
            received_at=self.clock.now(),
            source=item.source,
            idempotency_header=item.idempotency_header,
            source_event_id=item.source_event_id,
        )
        return base.NewFiling(filing=filing, adapters=router.route(filing, self.cfg.routes))

    async def submit(self, item: Inbound, *, actor: Actor) -> Submitted:
        """Accept one filing durably; returns only after the commit."""
        with self._intake_slot(1):
            await self._check_callback(item)
            prepared = self.prepare(item)
            [result] = await self.store.accept([prepared], actor=actor, now=self.clock.now())
            return await self._finish(result, prepared)

    @contextlib.contextmanager
    def _intake_slot(self, n: int) -> Iterator[None]:
        """Hold ``n`` places of the bounded intake buffer; 503 + Retry-After when it is full.

        Only what is refused here is refused: a filing that got a place is committed
        (or fails on its own) before its place is given back, so nothing accepted is lost.
        A batch larger than the whole buffer still goes through when the buffer is empty.
        """
        limit = self.cfg.gateway.max_pending_intake
        if self.pending_intake and self.pending_intake + n > limit:
            log.warning("intake.full", pending=self.pending_intake, limit=limit)
            raise errors.Unavailable(
                f"intake is full ({self.pending_intake} filings being accepted; the limit is "
                f"{limit}); retry after a moment",
                details={"pending": self.pending_intake, "limit": limit},
                retry_after=1,
            )
        self.pending_intake += n
        try:
            yield
        finally:
            self.pending_intake -= n

    async def submit_batch(
        self, items: Sequence[Inbound | errors.GatewayError], *, actor: Actor
    ) -> list[Submitted | errors.GatewayError]:
        """Accept many filings in one transaction; per-item results in the same order."""
        with self._intake_slot(sum(1 for i in items if not isinstance(i, errors.GatewayError))):
            return await self._submit_batch(items, actor=actor)

    async def _submit_batch(
        self, items: Sequence[Inbound | errors.GatewayError], *, actor: Actor
    ) -> list[Submitted | errors.GatewayError]:
        out: list[Submitted | errors.GatewayError | None] = [None] * len(items)
        prepared: list[tuple[int, base.NewFiling]] = []
        for i, item in enumerate(items):
            if isinstance(item, errors.GatewayError):
                out[i] = item
                continue
            try:
                await self._check_callback(item)
                prepared.append((i, self.prepare(item)))
            except errors.GatewayError as exc:
                out[i] = exc
        if prepared:
            results = await self.store.accept(
                [p for _, p in prepared], actor=actor, now=self.clock.now()
            )
            for (i, p), result in zip(prepared, results, strict=True):
                try:
                    out[i] = await self._finish(result, p)
                except errors.GatewayError as exc:
                    out[i] = exc
        return [r for r in out if r is not None]

    async def _check_callback(self, item: Inbound) -> None:
        if item.event.callback_url is not None:
            await self.check_callback(item.event.callback_url)

    async def _finish(self, result: base.AcceptResult, prepared: base.NewFiling) -> Submitted:
        if result.error is not None:
            raise result.error
        view = result.view or await self.store.get_filing(result.filing_id)
        if view is None:  # pragma: no cover - the row was committed a moment ago
            raise errors.StoreError(f"filing {result.filing_id} vanished after accept")
        if result.created:
            self._on_new_work()
            if self.metrics is not None:
                self.metrics.accepted(view)
            log.info(
                "filing.accepted",
                filing_id=view.id,
                filing_type=view.filing_type.value,
                environment=view.environment.value,
                source=view.source,
                source_event_id=view.source_event_id,
                adapters=prepared.adapters,
            )
        else:
            log.info("filing.duplicate", filing_id=view.id)
        return Submitted(filing=view, created=result.created)

    # --- reads ------------------------------------------------------------------------

    async def get(self, filing_id: str) -> models.FilingView:
        view = await self.store.get_filing(filing_id)
        if view is None:
            raise errors.NotFound(f"no filing {filing_id}", details={"id": filing_id})
        return view

    async def list(
        self, flt: base.ListFilter, *, limit: int = 50, cursor: str | None = None
    ) -> models.Page:
        return await self.store.list_filings(flt, limit=max(1, min(limit, MAX_PAGE)), cursor=cursor)

    async def history(self, filing_id: str) -> builtins.list[audit.AuditRow]:
        await self.get(filing_id)
        return await self.store.filing_history(filing_id)

    # --- operator actions -------------------------------------------------------------

    async def retry(self, filing_id: str, *, actor: Actor) -> models.FilingView:
        action = await self.store.retry_filing(filing_id, actor=actor, now=self.clock.now())
        log.info("filing.retried", filing_id=filing_id, deliveries=action.changed, actor=actor.name)
        self._count_action("retry", len(action.changed))
        self._on_new_work()
        return await self.get(filing_id)

    async def cancel(self, filing_id: str, *, actor: Actor) -> models.FilingView:
        action = await self.store.cancel_filing(filing_id, actor=actor, now=self.clock.now())
        log.info(
            "filing.cancelled", filing_id=filing_id, deliveries=action.changed, actor=actor.name
        )
        self._count_action("cancel", len(action.changed))
        self._on_new_work()
        return await self.get(filing_id)

    async def bulk(
        self,
        action: str,
        flt: base.BulkFilter,
        *,
        actor: Actor,
        reason: str,
        dry_run: bool = False,
        limit: int = 100,
    ) -> base.BulkResult:
        """Retry or cancel up to ``limit`` matching deliveries (issue 7); audited with
        ``reason``. A dry run changes nothing and says how many match."""
        if action not in base.BULK_FROM:
            raise errors.InvalidInput(f"unknown bulk action {action!r}")
        if not dry_run and not reason.strip():
            raise errors.InvalidInput(
                "a reason is required; it goes into the audit trail",
                details=[{"loc": "body.reason", "msg": "required unless dry_run"}],
            )
        if flt.adapter is not None and flt.adapter not in self.cfg.adapters:
            raise errors.InvalidInput(
                f"no adapter {flt.adapter!r} is configured",
                details=[{"loc": "body.adapter", "msg": f"one of {sorted(self.cfg.adapters)}"}],
            )
        result = await self.store.bulk_action(
            action,
            flt,
            actor=actor,
            now=self.clock.now(),
            reason=reason,
            limit=max(1, min(limit, MAX_PAGE)),
            dry_run=dry_run,
        )
        if not dry_run and result.deliveries:
            log.warning(
                f"deliveries.bulk_{action}",
                actor=actor.name,
                changed=len(result.deliveries),
                matched=result.matched,
                reason=reason,
            )
            self._count_action(action, len(result.deliveries))
            self._on_new_work()
        return result

    def _count_action(self, action: str, n: int) -> None:
        if self.metrics is not None and n:
            self.metrics.operator_actions.labels(action).inc(n)

    # --- adapters and health ----------------------------------------------------------

    async def adapter_info(self) -> builtins.list[dict[str, Any]]:
        counts = await self.store.counts()
        status = self.outage_status()
        out = []
        for name, section in self.cfg.adapters.items():
            adapter = self.adapters.get(name)
            health: dict[str, Any] | None = None
            if adapter is not None:
                try:
                    h = await adapter.check()
                    health = {"ok": h.ok, "detail": h.detail}
                except Exception as exc:  # a broken check() is reported, not raised
                    health = {"ok": False, "detail": f"check failed: {exc!r}"}
            out.append(
                {
                    "name": name,
                    "type": section.type or section.factory,
                    "concurrency": section.concurrency,
                    "codec": section.codec,
                    "health": health,
                    "deliveries": counts.get(name, {}),
                    **status.get(name, {}),
                }
            )
        return out

    # --- outages (issue 3) ------------------------------------------------------------

    async def add_outage(self, req: outages.OutageRequest, *, actor: Actor) -> outages.Outage:
        """Announce an outage of one adapter or one environment; audited."""
        if (req.adapter is None) == (req.environment is None):
            raise errors.InvalidInput(
                "give exactly one of adapter or environment",
                details=[{"loc": "body", "msg": "one of adapter, environment"}],
            )
        if req.adapter is not None and req.adapter not in self.cfg.adapters:
            raise errors.InvalidInput(
                f"no adapter {req.adapter!r} is configured",
                details=[{"loc": "body.adapter", "msg": f"one of {sorted(self.cfg.adapters)}"}],
            )
        now = self.clock.now()
        if req.ends_at is not None and req.ends_at <= (req.starts_at or now):
            raise errors.InvalidInput(
                "ends_at must be after starts_at (and after now when starts_at is absent)",
                details=[{"loc": "body.ends_at", "msg": "not after the start"}],
            )
        outage = await self.store.add_outage(req, actor=actor, now=now)
        log.warning("outage.added", actor=actor.name, **_outage_log(outage))
        self._on_new_work()
        return outage

    async def remove_outage(self, outage_id: str, *, actor: Actor) -> outages.Outage:
        """End an announced outage now; what it deferred may go at once."""
        outage = await self.store.remove_outage(outage_id, actor=actor, now=self.clock.now())
        log.warning("outage.removed", actor=actor.name, **_outage_log(outage))
        self._on_new_work()
        return outage

    async def list_outages(self, *, upcoming: int | None = None) -> dict[str, Any]:
        """Announced outages not yet over; with ``upcoming``, each calendar's next windows."""
        now = self.clock.now()
        data: dict[str, Any] = {"outages": await self.store.list_outages(now=now)}
        if upcoming is not None:
            data["calendars"] = calendar_windows(self.cfg, upcoming, now)
        return data

    async def readiness(self) -> dict[str, Any]:
        """Ready to take traffic? 503 names the failing check; an adapter in an outage
        only makes the gateway ``degraded`` (it still accepts and queues filings)."""
        checks: dict[str, str] = {}
        try:
            await self.store.ping()
            checks["store"] = "ok"
            version = await self.store.schema_version()
            checks["migrations"] = (
                "ok"
                if version >= base.SCHEMA_VERSION
                else f"behind: database at v{version}, this gateway needs v{base.SCHEMA_VERSION}"
            )
        except errors.StoreError as exc:
            checks["store"] = f"failing: {exc}"
            checks["migrations"] = "unknown: store unreachable"
        checks["dispatcher"] = "ok" if self.dispatcher_running() else "not running"
        checks["shutdown"] = "shutting down" if self.shutting_down else "ok"
        degraded = {}
        for name, st in self.outage_status().items():
            gate, brk = st.get("gate") or {}, st.get("breaker") or {}
            if gate.get("state") == "closed":
                degraded[name] = f"outage until {gate.get('until')}: {gate.get('reason')}"
            elif brk.get("state") in ("open", "half_open"):
                degraded[name] = f"circuit breaker {brk.get('state')}"
        ready = all(v == "ok" for v in checks.values())
        status = "not_ready" if not ready else "degraded" if degraded else "ready"
        failing = sorted(k for k, v in checks.items() if v != "ok")
        body: dict[str, Any] = {
            "status": status,
            "checks": checks,
            "failing": failing,
            "degraded": degraded,
        }
        sources = self.source_status()
        if sources:
            body["sources"] = sources
        return body


def _outage_log(o: outages.Outage) -> dict[str, Any]:
    return {
        "outage_id": o.id,
        "adapter": o.adapter,
        "environment": o.environment,
        "starts_at": models.utc_iso(o.starts_at),
        "ends_at": models.utc_iso(o.ends_at),
        "reason": o.reason,
        "reference": o.reference,
    }


def calendar_windows(cfg: config.Config, n: int, now: datetime) -> dict[str, Any]:
    """The next ``n`` windows of every configured calendar, in UTC and local time."""
    out: dict[str, Any] = {}
    for name, cal in outages.calendars_from_config(cfg).items():
        used_by = sorted(a for a, s in cfg.adapters.items() if name in s.calendars)
        out[name] = {
            "timezone": cal.zone.key,
            "adapters": used_by,
            "windows": [
                {
                    "start": models.utc_iso(w.start),
                    "end": models.utc_iso(w.end),
                    "start_local": w.start.astimezone(cal.zone).isoformat(),
                    "end_local": w.end.astimezone(cal.zone).isoformat(),
                    "policy": w.policy.value,
                }
                for w in outages.upcoming(cal, n, now)
            ],
        }
    return out
