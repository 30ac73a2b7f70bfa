"""The aiohttp application: routes, the scope each needs, middlewares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway import config
from gateway.api import acks, auth, handlers, openapi
from gateway.api.errors import error_middleware
from gateway.service import Service

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: (method, path, handler, scope or None for public)
ROUTES: list[tuple[str, str, Handler, str | None]] = [
    ("POST", "/v1/filings", handlers.post_filing, "submit"),
    ("POST", "/v1/filings/batch", handlers.post_batch, "submit"),
    ("GET", "/v1/filings", handlers.list_filings, "read"),
    ("GET", "/v1/filings/{id}", handlers.get_filing, "read"),
    ("GET", "/v1/filings/{id}/history", handlers.filing_history, "read"),
    ("POST", "/v1/filings/{id}/retry", handlers.retry_filing, "operate"),
    ("POST", "/v1/filings/{id}/cancel", handlers.cancel_filing, "operate"),
    ("GET", "/v1/adapters", handlers.list_adapters, "read"),
    ("POST", "/v1/acks", acks.post_acks, "submit"),
    ("GET", "/v1/acks", acks.list_acks, "read"),
    ("GET", "/v1/filings/{id}/acks", acks.filing_acks, "read"),
    ("POST", "/v1/filings/{id}/resend", acks.resend_filing, "operate"),
    ("POST", "/v1/filings/{id}/close-ack", acks.close_ack, "operate"),
    ("GET", "/v1/callbacks", acks.list_callbacks, "read"),
    ("GET", "/healthz", handlers.healthz, None),
    ("GET", "/livez", handlers.healthz, None),
    ("GET", "/readyz", handlers.readyz, None),
    ("GET", "/openapi.json", openapi.handler, None),
]

SCOPE = web.RequestKey("scope", str)


def _with_scope(handler: Handler, scope: str | None) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        authenticator = request.app[handlers.AUTH]
        principal = auth.ANONYMOUS
        if scope is not None:
            principal = authenticator.authenticate(request.headers.get("Authorization"))
            authenticator.require(principal, scope)
        request[handlers.PRINCIPAL] = principal
        return await handler(request)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def create_app(
    service: Service, cfg: config.Config, *, authenticator: auth.Authenticator
) -> web.Application:
    """The HTTP API for a service."""
    limit = max(cfg.gateway.max_body_bytes, cfg.gateway.max_batch_bytes)
    app = web.Application(middlewares=[error_middleware], client_max_size=limit + 1)
    app[handlers.SERVICE] = service
    app[handlers.AUTH] = authenticator
    app[handlers.LIMITS] = {
        "body": cfg.gateway.max_body_bytes,
        "batch": cfg.gateway.max_batch_bytes,
    }
    for method, path, handler, scope in ROUTES:
        app.router.add_route(method, path, _with_scope(handler, scope))
    return app
