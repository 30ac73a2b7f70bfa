"""The aiohttp application: routes, the scope each needs, middlewares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway import config, metrics, monitoring
from gateway.api import (
    acks,
    admin,
    auth,
    callback_ops,
    controls,
    dashboard,
    dashboard_records,
    edge,
    handlers,
    inputs,
    openapi,
    ops,
    quotas,
    records,
    replay,
    x12,
)
from gateway.api import filers as filer_scope
from gateway.api import inbound as inbound_api
from gateway.api.errors import front
from gateway.inbound.intake import Intake
from gateway.inbound.normalizers import Sources
from gateway.service import Service

if TYPE_CHECKING:
    from gateway.delivery import spans

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: (method, path, handler, scope or None for public)
ROUTES: list[tuple[str, str, Handler, str | None]] = [
    ("POST", "/v1/filings", inbound_api.post_filing, "submit"),
    ("POST", "/v1/filings/batch", inbound_api.post_batch, "submit"),
    ("GET", "/v1/filings", handlers.list_filings, "read"),
    ("GET", "/v1/filings/{id}", handlers.get_filing, "read"),
    ("GET", "/v1/filings/{id}/history", handlers.filing_history, "read"),
    ("POST", "/v1/filings/{id}/retry", handlers.retry_filing, "operate"),
    ("POST", "/v1/filings/{id}/cancel", handlers.cancel_filing, "operate"),
    ("GET", "/v1/adapters", handlers.list_adapters, "read"),
    ("POST", "/v1/outages", handlers.post_outage, "operate"),
    ("GET", "/v1/outages", handlers.list_outages, "read"),
    ("DELETE", "/v1/outages/{id}", handlers.delete_outage, "operate"),
    ("POST", "/v1/pauses", controls.post_pause, "operate"),
    ("GET", "/v1/pauses", controls.list_pauses, "read"),
    ("DELETE", "/v1/pauses/{id}", controls.delete_pause, "operate"),
    ("GET", "/v1/rejected-events", inbound_api.list_rejected, "read"),
    ("POST", "/v1/rejected-events/{id}/replay", replay.replay, "operate"),
    ("POST", "/v1/acks", acks.post_acks, "submit"),
    ("GET", "/v1/acks", acks.list_acks, "read"),
    ("GET", "/v1/filings/{id}/acks", acks.filing_acks, "read"),
    ("POST", "/v1/filings/{id}/resend", acks.resend_filing, "operate"),
    ("POST", "/v1/filings/{id}/close-ack", acks.close_ack, "operate"),
    ("GET", "/v1/callbacks", acks.list_callbacks, "read"),
    ("POST", "/v1/callbacks/retry", callback_ops.retry, "operate"),
    ("GET", "/v1/x12/gaps", x12.gaps, "read"),
    ("POST", "/v1/admin/reload", admin.reload, "admin"),
    ("GET", "/healthz", handlers.healthz, None),
    ("GET", "/livez", handlers.healthz, None),
    ("GET", "/readyz", handlers.readyz, None),
    ("GET", "/openapi.json", openapi.handler, None),
    # monitoring (issue 7)
    ("GET", "/metrics", ops.metrics_handler, "read"),
    ("GET", "/v1/overview", ops.overview, "read"),
    ("POST", "/v1/deliveries/retry", ops.bulk_retry, "operate"),
    ("POST", "/v1/deliveries/cancel", ops.bulk_cancel, "operate"),
    ("GET", "/docs", dashboard.docs, None),
    ("GET", "/v1/records", records.search, "read"),
    ("GET", "/v1/records/{id}", records.show, "read"),
    ("POST", "/v1/records/{id}/restore", records.restore, "operate"),
]

#: the dashboard (``[monitoring] dashboard = true``); pages are shells, fragments need read
UI_ROUTES: list[tuple[str, str, Handler, str | None]] = [
    ("GET", "/", dashboard.index, None),
    ("GET", "/ui/", dashboard.index, None),
    ("GET", "/ui/panels", dashboard.panels, "read"),
    ("GET", "/ui/events", dashboard.events, "read"),
    ("GET", "/ui/filings/{id}", dashboard.filing_page, None),
    ("GET", "/ui/filings/{id}/panel", dashboard.filing_panel, "read"),
    ("GET", "/ui/static/{name}", dashboard.static, None),
    # records pages (issue 20); the fragment routes before the page of a record {id}
    ("GET", "/ui/records", dashboard_records.search_page, None),
    ("GET", "/ui/records/panel", dashboard_records.search_panel, "read"),
    ("GET", "/ui/records/{id}", dashboard_records.record_page, None),
    ("GET", "/ui/records/{id}/panel", dashboard_records.record_panel, "read"),
]

SCOPE = web.RequestKey("scope", str)


def _with_scope(handler: Handler, scope: str | None, filers: auth.FilerScope) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        authenticator = request.app[handlers.AUTH]
        principal = auth.ANONYMOUS
        if scope is not None:
            principal = authenticator.authenticate(request.headers.get("Authorization"))
            authenticator.require(principal, scope)
            if principal.scoped:
                await filer_scope.check_filer_scope(request, principal, filers)
        request[handlers.PRINCIPAL] = principal
        return await handler(request)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def create_app(
    service: Service,
    cfg: config.Config,
    *,
    authenticator: auth.Authenticator,
    intake: Intake | None = None,
    monitor: monitoring.Monitor | None = None,
    metrics_: metrics.Metrics | None = None,
    tracer: spans.Tracer | None = None,
) -> web.Application:
    """The HTTP API for a service (with the dashboard unless the config turns it off)."""
    limit = max(cfg.gateway.max_body_bytes, cfg.gateway.max_batch_bytes)
    # the server span (tracing on only) is outermost: it sees the error middleware's answer;
    # that one refuses foreign hosts and origins, undeclared write bodies (``edge``) and
    # unreadable input (``inputs``) before any handler
    edge_ = edge.Edge(cfg.gateway)
    middlewares: list[Middleware] = [front([edge_.check, inputs.check_request])]
    if tracer is not None:
        middlewares.insert(0, edge.traced(tracer))
    app = web.Application(
        middlewares=middlewares,
        client_max_size=limit + 1,
    )
    app[edge.EDGE] = edge_
    app[handlers.SERVICE] = service
    app[handlers.AUTH] = authenticator
    app[inbound_api.INTAKE] = intake or Intake(
        service=service, sources=Sources(cfg), clock=service.clock
    )
    app[handlers.LIMITS] = {
        "body": cfg.gateway.max_body_bytes,
        "batch": cfg.gateway.max_batch_bytes,
    }
    app[ops.MONITOR] = monitor or monitoring.Monitor(
        store=service.store,
        cfg=cfg,
        clock=service.clock,
        adapters=service.adapters,
        status=lambda: service.outage_status(),
        ttl_s=cfg.monitoring.queue_cache,
    )
    app[ops.METRICS] = metrics_ or service.metrics or metrics.Metrics(adapters=sorted(cfg.adapters))
    app[ops.METRICS].label_filers(cfg.metrics.filer_labels)
    app[quotas.QUOTAS] = quotas.Quotas(
        cfg.quotas, service=service, on_refused=app[ops.METRICS].quota_refused
    )
    routes = ROUTES + (UI_ROUTES if cfg.monitoring.dashboard else [])
    for method, path, handler, scope in routes:
        filers = auth.FILER_SCOPE.get((method, path), auth.FilerScope.UNSCOPED)
        if filers is auth.FilerScope.FILING and "{id}" not in path:
            raise ValueError(f"{method} {path}: a FILING route names the filing {{id}}")
        app.router.add_route(method, path, _with_scope(handler, scope, filers))
    dashboard.setup(app)
    records.setup(app, service, cfg)
    return app
