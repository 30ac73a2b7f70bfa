"""Operations endpoints (issue 7): ``/metrics``, ``/v1/overview`` and bulk retry/cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
)

from gateway import metrics, models, monitoring
from gateway.api import handlers, inputs
from gateway.values import BulkFilter

MONITOR = web.AppKey("monitor", monitoring.Monitor)
METRICS = web.AppKey("metrics", metrics.Metrics)


def _string_time(value: Any) -> Any:
    if value is not None and not isinstance(value, str | datetime):
        raise ValueError("expected an ISO 8601 date-time string with an offset")
    return value


class BulkRequest(BaseModel):
    """``POST /v1/deliveries/retry|cancel``: which deliveries, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="BulkRequest")

    state: models.DeliveryState | None = Field(
        default=None,
        description="Only deliveries in this state (retry: dead|blocked; default both).",
    )
    adapter: StrictStr | None = Field(default=None, description="Only this adapter's.")
    filing_type: models.FilingType | None = None
    environment: models.Environment | None = None
    not_after: Annotated[AwareDatetime | None, BeforeValidator(_string_time)] = Field(
        default=None,
        description="Only deliveries last changed at or before this; pass the dry run's "
        "`as_of` so a chunked run touches exactly the set it previewed.",
    )
    limit: StrictInt = Field(default=100, ge=1, le=500, description="At most this many now.")
    dry_run: StrictBool = Field(default=False, description="Change nothing; count and list.")
    reason: StrictStr = Field(
        default="", max_length=1000, description="Why; required unless dry_run; audited."
    )


class BulkDelivery(BaseModel):
    """One delivery a bulk action changed (or would change)."""

    model_config = ConfigDict(frozen=True)

    id: str
    filing_id: str
    adapter: str
    state: str = Field(description="Its state before the action.")


class BulkResponse(BaseModel):
    """What a bulk action did (or, with dry_run, would do)."""

    model_config = ConfigDict(frozen=True, title="BulkResponse")

    action: Literal["retry", "cancel"]
    dry_run: bool
    matched: int = Field(description="Deliveries matching the filter before this call.")
    count: int = Field(description="Deliveries changed now (dry run: that would be).")
    remaining: int = Field(description="Matching deliveries left after this call.")
    as_of: AwareDatetime = Field(description="Pass back as `not_after` to pin the set.")
    deliveries: list[BulkDelivery]


async def metrics_handler(request: web.Request) -> web.Response:
    """Prometheus text exposition: this process's figures and the shared queue's."""
    monitor, registry = request.app[MONITOR], request.app[METRICS]
    snap = await monitor.snapshot()
    registry.queue.update(
        snap.stats,
        taken_at=snap.taken_at,
        now=monitor.clock.now(),
        status=monitor.status(),
        acks=snap.acks,
        filers=snap.filers,
    )
    return web.Response(body=registry.render(), headers={"Content-Type": metrics.CONTENT_TYPE})


async def overview(request: web.Request) -> web.Response:
    """The queue, adapters, calendars and outages at a glance (``top``, the dashboard);
    ``?filer=CODE``: the queue by filer shows that filer code only."""
    inputs.only_params(request, ("filer",))
    filer = request.query.get("filer") or None
    return handlers.respond(await request.app[MONITOR].overview(filer=filer))


async def _bulk(request: web.Request, action: str) -> web.Response:
    req = await handlers.read_model(request, BulkRequest, what="a bulk request")
    service = request.app[handlers.SERVICE]
    as_of = service.clock.now()
    flt = BulkFilter(
        state=req.state,
        adapter=req.adapter,
        filing_type=req.filing_type,
        environment=req.environment,
        not_after=req.not_after or as_of,
        **request[handlers.PRINCIPAL].filters(),
    )
    result = await service.bulk(
        action,
        flt,
        actor=handlers.actor_of(request),
        reason=req.reason,
        dry_run=req.dry_run,
        limit=req.limit,
    )
    count = len(result.deliveries)
    body = BulkResponse(
        action=action,  # type: ignore[arg-type]
        dry_run=req.dry_run,
        matched=result.matched,
        count=count,
        remaining=result.matched - (0 if req.dry_run else count),
        as_of=flt.not_after or as_of,
        deliveries=[
            BulkDelivery(id=d[0], filing_id=d[1], adapter=d[2], state=d[3])
            for d in result.deliveries
        ],
    )
    return handlers.respond(body)


async def bulk_retry(request: web.Request) -> web.Response:
    """Dead or blocked deliveries matching a filter back to pending."""
    return await _bulk(request, "retry")


async def bulk_cancel(request: web.Request) -> web.Response:
    """Cancel deliveries matching a filter that are not yet delivered."""
    return await _bulk(request, "cancel")
