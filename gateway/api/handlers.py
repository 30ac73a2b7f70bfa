"""HTTP handlers under ``/v1``. Each reads the request, calls the service, writes JSON.

``POST /v1/filings`` validates the event straight from the request's bytes
(``model_validate_json``: one pass in pydantic-core, no Python dict built first). That
parser is stricter than the json module in places (a byte-order mark, a lone surrogate
escape) and words its errors its own way, so whenever it refuses a body the body goes the
old road, ``jsonio.loads`` then ``model_validate``, which refuses or accepts it exactly as
before and names the fault the same way: the fast road only ever accepts what the old one
accepts, with the same values (so the same body hash), and every refusal reads as before.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway import errors, models
from gateway.api import auth, inputs, quotas
from gateway.api.errors import DEFAULT_RETRY_AFTER_S, REQUEST_ID, validation_details
from gateway.encoding import jsonio
from gateway.rules import outages
from gateway.service import Inbound, Service, Submitted
from gateway.values import Actor, ListFilter

SERVICE = web.AppKey("service", Service)
AUTH = web.AppKey("authenticator", auth.Authenticator)
LIMITS = web.AppKey("limits", dict)
PRINCIPAL = web.RequestKey("principal", auth.Principal)

MAX_BATCH = 1000
#: a \\uD800-\\uDFFF escape: the json module's road checks such a body (lone surrogates)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def dump(value: Any) -> str:
    def default(obj: Any) -> Any:
        if isinstance(obj, BaseModel):
            return obj.model_dump(mode="json")
        if isinstance(obj, datetime):
            return models.utc_iso(obj)
        return str(obj)

    return jsonio.dumps(value, default=default)


def respond(value: Any, status: int = 200) -> web.Response:
    return web.Response(text=dump(value), status=status, content_type="application/json")


def view_json(view: models.FilingView) -> dict[str, Any]:
    return view.model_dump(mode="json")


def actor_of(request: web.Request) -> Actor:
    return Actor(name=request[PRINCIPAL].name, request_id=request.get(REQUEST_ID))


async def read_json(request: web.Request, limit: int) -> Any:
    """The request body as JSON: 413 past ``limit`` bytes, 400 when not JSON."""
    raw = await read_body(request, limit)
    if not raw.strip():
        raise errors.MalformedInput("the request body is empty; send a JSON document")
    return jsonio.loads(raw)


M = TypeVar("M", bound=BaseModel)


async def read_model(
    request: web.Request, model: type[M], *, what: str, prefix: str = "body."
) -> M:
    """The request body as ``model``: 422 naming the field at fault (``prefix`` + its path)
    when it is not a JSON object or does not validate."""
    data = await read_json(request, request.app[LIMITS]["body"])
    if not isinstance(data, dict):
        raise errors.InvalidInput(
            f"{what} is a JSON object", details=[{"loc": "body", "msg": "expected an object"}]
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = validation_details(exc, prefix)
        raise errors.InvalidInput(
            f"{details[0]['loc']}: {details[0]['msg']}", details=details
        ) from exc


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body: 413 past ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise errors.PayloadTooLarge(
            f"body is {request.content_length} bytes; the limit is {limit}",
            details={"limit_bytes": limit},
        )
    if request.content_length is not None:
        # the length is known and within the limit (so within client_max_size): one read
        return await request.read()
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise errors.PayloadTooLarge(
                f"body is larger than the limit of {limit} bytes", details={"limit_bytes": limit}
            )
        chunks.append(chunk)
    return b"".join(chunks)


def parse_event(data: Any, *, prefix: str = "") -> models.FilingEvent:
    if not isinstance(data, dict):
        raise errors.InvalidInput(
            "a filing event must be a JSON object",
            details=[{"loc": prefix.rstrip(".") or "body", "msg": "expected an object"}],
        )
    try:
        return models.FilingEvent.model_validate(data)
    except ValidationError as exc:
        details = validation_details(exc, prefix)
        first = details[0]
        raise errors.InvalidInput(f"{first['loc']}: {first['msg']}", details=details) from exc


def event_from_body(raw: bytes) -> models.FilingEvent:
    """The filing event of a request body (see the module docstring for the two roads)."""
    if not raw.strip():
        raise errors.MalformedInput("the request body is empty; send a JSON document")
    if not _SURROGATE_ESCAPE.search(raw):
        try:
            return models.FilingEvent.model_validate_json(raw)
        except ValidationError:
            pass  # the old road says what is wrong, in its own words
    return parse_event(jsonio.loads(raw))


def submitted_json(result: Submitted) -> dict[str, Any]:
    v = result.filing
    return {
        "id": v.id,
        "status": v.status.value,
        "created": result.created,
        "deliveries": [d.model_dump(mode="json") for d in v.deliveries],
    }


# --- filings ----------------------------------------------------------------------------


async def post_filing(request: web.Request) -> web.Response:
    event = event_from_body(await read_body(request, request.app[LIMITS]["body"]))
    request[PRINCIPAL].may_submit(event.filer_code, event.environment.value)
    principal = request[PRINCIPAL].name
    item = Inbound(
        event=event,
        idempotency_header=request.headers.get("Idempotency-Key"),
        source=f"api:{principal}",
    )
    actor = Actor(name=principal, request_id=request.get(REQUEST_ID))
    quota = request.app[quotas.QUOTAS]
    if quota.active:
        await quota.admit(request[PRINCIPAL], item)
    result = await request.app[SERVICE].submit(item, actor=actor)
    return respond(submitted_json(result), status=202 if result.created else 200)


async def post_batch(request: web.Request) -> web.Response:
    data = await read_json(request, request.app[LIMITS]["batch"])
    if not isinstance(data, list):
        raise errors.InvalidInput(
            "a batch is a JSON array of filing events",
            details=[{"loc": "body", "msg": "expected an array"}],
        )
    if not data:
        raise errors.InvalidInput(
            "a batch must hold at least one event", details=[{"loc": "body", "msg": "empty array"}]
        )
    if len(data) > MAX_BATCH:
        raise errors.InvalidInput(
            f"a batch holds at most {MAX_BATCH} events",
            details=[{"loc": "body", "msg": f"{len(data)} events"}],
        )
    not_objects = [i for i, raw in enumerate(data) if not isinstance(raw, dict)]
    if not_objects:
        raise errors.InvalidInput(
            "every item of a batch must be a JSON object",
            details=[{"loc": f"[{i}]", "msg": "expected an object"} for i in not_objects[:20]],
        )
    principal: auth.Principal = request[PRINCIPAL]
    quota = request.app[quotas.QUOTAS]
    source = f"api:{principal.name}"
    items: list[Inbound | errors.GatewayError] = []
    for i, raw in enumerate(data):
        try:
            event = parse_event(raw, prefix=f"[{i}].")
            principal.may_submit(event.filer_code, event.environment.value)
            item = Inbound(event=event, source=source)
            if quota.active:
                await quota.admit(principal, item)
            items.append(item)
        except errors.GatewayError as exc:
            items.append(exc)
    results = await request.app[SERVICE].submit_batch(items, actor=actor_of(request))
    out = []
    for r in results:
        if isinstance(r, Submitted):
            out.append({"http_status": 202 if r.created else 200, **submitted_json(r)})
        else:
            out.append(
                {
                    "http_status": r.status,
                    "error": {"code": r.code, "message": r.message, "details": r.details},
                }
            )
    accepted = sum(1 for r in results if isinstance(r, Submitted))
    return respond({"accepted": accepted, "rejected": len(results) - accepted, "results": out})


async def get_filing(request: web.Request) -> web.Response:
    view = await request.app[SERVICE].get(request.match_info["id"])
    return respond(view_json(view))


def _enum(cls: type[Any], name: str, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return cls(value)
    except ValueError as exc:
        allowed = ", ".join(m.value for m in cls)
        raise errors.InvalidInput(
            f"{name} must be one of: {allowed}",
            details=[{"loc": f"query.{name}", "msg": f"one of {allowed}"}],
        ) from exc


def _time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise errors.InvalidInput(
            f"{name} must be an ISO 8601 time", details=[{"loc": f"query.{name}", "msg": "time"}]
        ) from exc
    if when.tzinfo is None:
        raise errors.InvalidInput(
            f"{name} needs a UTC offset (e.g. Z)",
            details=[{"loc": f"query.{name}", "msg": "no offset"}],
        )
    return when


async def list_filings(request: web.Request) -> web.Response:
    q = request.query
    known = {
        "status",
        "state",
        "filing_type",
        "environment",
        "reference",
        "adapter",
        "since",
        "until",
        "limit",
        "cursor",
        "at_risk",
        "ack_overdue",
        "ack_conflict",
        "filer_code",
    }
    inputs.only_params(request, known)
    limit = inputs.query_int(request, "limit", default=50, low=1, high=500)
    principal: auth.Principal = request[PRINCIPAL]
    scoped = principal.filters()
    filer_code = q.get("filer_code")
    if filer_code is not None:
        if not filer_code.strip():
            raise errors.InvalidInput(
                "filer_code must not be empty",
                details=[{"loc": "query.filer_code", "msg": "empty"}],
            )
        if principal.filer_codes is not None and filer_code not in principal.filer_codes:
            return respond({"items": [], "next_cursor": None})  # as for an unused code
        scoped["filer_codes"] = (filer_code,)
    flt = ListFilter(
        status=_enum(models.FilingStatus, "status", q.get("status")),
        state=_enum(models.DeliveryState, "state", q.get("state")),
        filing_type=_enum(models.FilingType, "filing_type", q.get("filing_type")),
        environment=_enum(models.Environment, "environment", q.get("environment")),
        reference=q.get("reference"),
        adapter=q.get("adapter"),
        since=_time("since", q.get("since")),
        until=_time("until", q.get("until")),
        at_risk=_bool("at_risk", q.get("at_risk")),
        ack_overdue=_bool("ack_overdue", q.get("ack_overdue")),
        ack_conflict=_bool("ack_conflict", q.get("ack_conflict")),
        **scoped,
    )
    page = await request.app[SERVICE].list(flt, limit=limit, cursor=q.get("cursor") or None)
    return respond({"items": [view_json(v) for v in page.items], "next_cursor": page.next_cursor})


def _bool(name: str, value: str | None) -> bool | None:
    if value is None:
        return None
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise errors.InvalidInput(
        f"{name} must be true or false", details=[{"loc": f"query.{name}", "msg": "boolean"}]
    )


async def retry_filing(request: web.Request) -> web.Response:
    view = await request.app[SERVICE].retry(request.match_info["id"], actor=actor_of(request))
    return respond(view_json(view))


async def cancel_filing(request: web.Request) -> web.Response:
    view = await request.app[SERVICE].cancel(request.match_info["id"], actor=actor_of(request))
    return respond(view_json(view))


async def filing_history(request: web.Request) -> web.Response:
    filing_id = request.match_info["id"]
    rows = await request.app[SERVICE].history(filing_id)
    return respond({"filing_id": filing_id, "events": [r.as_dict() for r in rows]})


# --- outages ---------------------------------------------------------------------------


async def post_outage(request: web.Request) -> web.Response:
    req = await read_model(request, outages.OutageRequest, what="an outage", prefix="")
    outage = await request.app[SERVICE].add_outage(req, actor=actor_of(request))
    return respond(outage, status=201)


async def list_outages(request: web.Request) -> web.Response:
    inputs.only_params(request, {"upcoming"})
    n = inputs.query_optional_int(request, "upcoming", low=1, high=100)
    return respond(await request.app[SERVICE].list_outages(upcoming=n))


async def delete_outage(request: web.Request) -> web.Response:
    outage = await request.app[SERVICE].remove_outage(
        request.match_info["id"], actor=actor_of(request)
    )
    return respond(outage)


# --- adapters and health ----------------------------------------------------------------


async def list_adapters(request: web.Request) -> web.Response:
    return respond({"adapters": await request.app[SERVICE].adapter_info()})


async def healthz(request: web.Request) -> web.Response:
    return respond({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    body = await service.readiness()
    body["store"] = service.cfg.gateway.store_label()  # which database, password masked
    if body["status"] != "not_ready":
        return respond(body)
    response = respond(body, status=503)
    response.headers["Retry-After"] = str(DEFAULT_RETRY_AFTER_S)
    return response
