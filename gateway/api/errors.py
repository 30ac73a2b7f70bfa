"""JSON errors ``{"error": {"code", "message", "details"}}`` and the middleware that makes them.

Every error leaves as JSON with the right status: our ``GatewayError``s by their
``status``; aiohttp's HTTP exceptions (404 route, 405, 413) by theirs; anything
unexpected as a 500 that names the request id and logs the cause (never bad input).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from aiohttp import web
from pydantic import ValidationError

from gateway import errors
from gateway.api import inputs

log = structlog.get_logger("gateway.api")

REQUEST_ID = web.RequestKey("request_id", str)
#: seconds in ``Retry-After`` of a 503 whose cause gave none (a store away, shutting down)
DEFAULT_RETRY_AFTER_S = 5
_HTTP_CODES = {
    400: "malformed",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    503: "unavailable",
}


class _RequestIds:
    """Request ids (32 hex digits, as a uuid4's): 64 random bits drawn once per process,
    and again in a forked child, then a counter. Unique across processes as the random
    part is; a fifth of ``uuid.uuid4().hex``'s cost (no ``os.urandom`` per request)."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.counter):016x}"


new_request_id = _RequestIds()


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def json_error(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.json_response(
        error_body(code, message, details),
        status=status,
        headers=headers,
        dumps=lambda v: json.dumps(v, default=str),
    )


def validation_details(exc: ValidationError, prefix: str = "") -> list[dict[str, Any]]:
    """Pydantic errors as ``[{loc, msg, type}]`` with dotted field paths."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        out.append(
            {
                "loc": f"{prefix}{loc}" if loc else prefix.rstrip(".") or "body",
                "msg": err["msg"].removeprefix("Value error, "),
                "type": err["type"],
            }
        )
    return out


def to_response(exc: errors.GatewayError) -> web.Response:
    headers = None
    if isinstance(exc, errors.Unavailable):
        # a client (or proxy) told when to come back does not hammer a store that is away
        retry_after = exc.retry_after or DEFAULT_RETRY_AFTER_S
        headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}
    if isinstance(exc, errors.Unauthorized):
        headers = {"WWW-Authenticate": 'Bearer realm="edi-gateway"'}
    return json_error(exc.status, exc.code, exc.message, exc.details, headers)


Check = Callable[[web.Request], None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def front(checks: Sequence[Check] = ()) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The outermost middleware (inside a tracing span): the request id, then ``checks``
    (synchronous refusals: the edge's, the inputs'), then the handler; every error as JSON.
    One middleware, not one per check: each is a coroutine more on every request."""

    @web.middleware
    async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        given, bad_id = inputs.request_id(request.headers.get("X-Request-ID"))
        request_id = given or new_request_id()
        request[REQUEST_ID] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            if bad_id is not None:
                raise errors.MalformedInput(
                    f"header.X-Request-ID: {bad_id}",
                    details=[{"loc": "header.X-Request-ID", "msg": bad_id}],
                )
            for check in checks:
                check(request)
            response = await handler(request)
        except errors.GatewayError as exc:
            response = to_response(exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = _HTTP_CODES.get(exc.status, "http_error")
            keep = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
            response = json_error(exc.status, code, exc.reason or code, headers=keep or None)
        except Exception:  # the last line of defence: a JSON 500, logged with its cause
            log.exception("api.unhandled_error", path=request.path)
            response = json_error(
                500, "internal", "internal error; see the gateway log", {"request_id": request_id}
            )
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
        response.headers["X-Request-ID"] = request_id
        return response

    return error_middleware


error_middleware = front()
