"""Reads (one filing, a page, its history) and operator actions: retry, cancel and the
audited bulk retry/cancel, each waking the dispatcher and counted in the metrics."""

from __future__ import annotations

import builtins

import structlog

from gateway import errors, models, values
from gateway.audit import chain as audit
from gateway.service.core import MAX_PAGE, ServiceCore
from gateway.values import Actor

log = structlog.get_logger("gateway.service")


class Operating(ServiceCore):
    """Filings read and acted on."""

    async def get(self, filing_id: str) -> models.FilingView:
        view = await self.store.get_filing(filing_id)
        if view is None:
            raise errors.NotFound(f"no filing {filing_id}", details={"id": filing_id})
        return view

    async def list(
        self, flt: values.ListFilter, *, limit: int = 50, cursor: str | None = None
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
        flt: values.BulkFilter,
        *,
        actor: Actor,
        reason: str,
        dry_run: bool = False,
        limit: int = 100,
    ) -> values.BulkResult:
        """Retry or cancel up to ``limit`` matching deliveries (issue 7); audited with
        ``reason``. A dry run changes nothing and says how many match."""
        if action not in values.BULK_FROM:
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
