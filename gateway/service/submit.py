"""Intake: normalize and route an event (pure), hold a place in the bounded intake
buffer (503 + Retry-After when full), accept one filing or a batch durably, and log and
count what was created."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from gateway import errors, ids, values
from gateway.delivery import tracing
from gateway.rules import normalize, router
from gateway.service import outages
from gateway.service.core import Inbound, ServiceCore, Submitted
from gateway.values import Actor

log = structlog.get_logger("gateway.service")


class Submitting(ServiceCore):
    """Filings in."""

    def prepare(self, item: Inbound) -> values.NewFiling:
        """Normalize and route one event (pure; raises InvalidInput / Unroutable)."""
        filing = normalize.normalize(
            item.event,
            filing_id=ids.new_id("fil"),
            received_at=self.clock.now(),
            source=item.source,
            idempotency_header=item.idempotency_header,
            source_event_id=item.source_event_id,
        )
        filing = tracing.stamp(filing)  # the accepting span's context, when tracing
        new = values.NewFiling(filing=filing, adapters=router.route(filing, self.cfg.routes))
        outages.refuse_in_window(self.cfg, new, filing.received_at)  # 409 in such a window
        return new

    async def submit(self, item: Inbound, *, actor: Actor) -> Submitted:
        """Accept one filing durably; returns only after the commit."""
        self._hold_intake(1)
        try:
            await self._check_callback(item)
            prepared = self.prepare(item)
            [result] = await self.store.accept([prepared], actor=actor, now=self.clock.now())
            return await self._finish(result, prepared)
        finally:  # a try, not a context manager: that cost a generator per filing
            self.pending_intake -= 1

    def _hold_intake(self, n: int) -> None:
        """Hold ``n`` places of the bounded intake buffer (the caller gives them back when
        done); 503 + Retry-After when it is full.

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

    async def submit_batch(
        self, items: Sequence[Inbound | errors.GatewayError], *, actor: Actor
    ) -> list[Submitted | errors.GatewayError]:
        """Accept many filings in one transaction; per-item results in the same order."""
        n = sum(1 for i in items if not isinstance(i, errors.GatewayError))
        self._hold_intake(n)
        try:
            return await self._submit_batch(items, actor=actor)
        finally:
            self.pending_intake -= n

    async def _submit_batch(
        self, items: Sequence[Inbound | errors.GatewayError], *, actor: Actor
    ) -> list[Submitted | errors.GatewayError]:
        out: list[Submitted | errors.GatewayError | None] = [None] * len(items)
        prepared: list[tuple[int, values.NewFiling]] = []
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

    async def _finish(self, result: values.AcceptResult, prepared: values.NewFiling) -> Submitted:
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
