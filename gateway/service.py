"""The facade the HTTP API and the CLI call: submit, read, retry, cancel, adapters.

It owns no I/O of its own: it normalizes and routes (pure), then asks the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from gateway import acks, audit, config, errors, ids, models, normalize, router, ssrf
from gateway.clock import Clock
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
        check_callback: Callable[[str], Awaitable[Any]] | None = None,
    ) -> None:
        self.store = store
        self.cfg = cfg
        self.clock = clock
        self.adapters = dict(adapters or {})
        self._on_new_work = on_new_work or (lambda: None)
        self.shutting_down = False
        self.dispatcher_running: Callable[[], bool] = lambda: True
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
        )
        return base.NewFiling(filing=filing, adapters=router.route(filing, self.cfg.routes))

    async def submit(self, item: Inbound, *, actor: Actor) -> Submitted:
        """Accept one filing durably; returns only after the commit."""
        await self._check_callback(item)
        prepared = self.prepare(item)
        [result] = await self.store.accept([prepared], actor=actor, now=self.clock.now())
        return await self._finish(result, prepared)

    async def submit_batch(
        self, items: Sequence[Inbound | errors.GatewayError], *, actor: Actor
    ) -> list[Submitted | errors.GatewayError]:
        """Accept many filings in one transaction; per-item results in the same order."""
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
        view = await self.store.get_filing(result.filing_id)
        if view is None:  # pragma: no cover - the row was committed a moment ago
            raise errors.StoreError(f"filing {result.filing_id} vanished after accept")
        if result.created:
            self._on_new_work()
            log.info(
                "filing.accepted",
                filing_id=view.id,
                filing_type=view.filing_type.value,
                environment=view.environment.value,
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

    async def history(self, filing_id: str) -> list[audit.AuditRow]:
        await self.get(filing_id)
        return await self.store.filing_history(filing_id)

    # --- operator actions -------------------------------------------------------------

    async def retry(self, filing_id: str, *, actor: Actor) -> models.FilingView:
        action = await self.store.retry_filing(filing_id, actor=actor, now=self.clock.now())
        log.info("filing.retried", filing_id=filing_id, deliveries=action.changed, actor=actor.name)
        self._on_new_work()
        return await self.get(filing_id)

    async def cancel(self, filing_id: str, *, actor: Actor) -> models.FilingView:
        action = await self.store.cancel_filing(filing_id, actor=actor, now=self.clock.now())
        log.info(
            "filing.cancelled", filing_id=filing_id, deliveries=action.changed, actor=actor.name
        )
        self._on_new_work()
        return await self.get(filing_id)

    # --- adapters and health ----------------------------------------------------------

    async def adapter_info(self) -> list[dict[str, Any]]:
        counts = await self.store.counts()
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
                }
            )
        return out

    async def readiness(self) -> dict[str, Any]:
        checks: dict[str, str] = {}
        try:
            await self.store.ping()
            checks["store"] = "ok"
        except errors.StoreError as exc:
            checks["store"] = f"failing: {exc}"
        checks["dispatcher"] = "ok" if self.dispatcher_running() else "not running"
        checks["shutdown"] = "shutting down" if self.shutting_down else "ok"
        ready = all(v == "ok" for v in checks.values())
        return {"status": "ready" if ready else "not_ready", "checks": checks}
