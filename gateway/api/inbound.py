"""CloudEvents on ``POST /v1/filings`` (structured, binary) and ``/v1/filings/batch``,
and ``GET /v1/rejected-events``. Plain JSON goes on to the filing handlers unchanged."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway import errors
from gateway.api import handlers, inputs, quotas
from gateway.inbound import cloudevents
from gateway.inbound.intake import Intake
from gateway.service import Submitted

INTAKE = web.AppKey("intake", Intake)


def _one(results: list[Submitted]) -> tuple[dict[str, Any], int]:
    created = any(r.created for r in results)
    status = 202 if created else 200
    if len(results) == 1:
        return handlers.submitted_json(results[0]), status
    return {"created": created, "filings": [handlers.submitted_json(r) for r in results]}, status


async def post_filing(request: web.Request) -> web.StreamResponse:
    """A filing event as JSON, or one CloudEvent (structured or binary mode)."""
    if not cloudevents.is_http_cloudevent(request.headers):
        return await handlers.post_filing(request)
    if cloudevents.media_type(request.content_type) == cloudevents.BATCH:
        raise errors.MalformedInput(
            "a CloudEvents batch goes to POST /v1/filings/batch",
            details=[{"loc": "header.Content-Type", "msg": "batch on the single endpoint"}],
        )
    body = await handlers.read_body(request, request.app[handlers.LIMITS]["body"])
    envelope = cloudevents.from_http(request.headers, body)
    await _gate(request, envelope, request.headers.get("Idempotency-Key"))
    results = await request.app[INTAKE].submit_cloudevent(
        envelope,
        key=request.headers.get("Idempotency-Key"),
        actor=handlers.actor_of(request),
    )
    data, status = _one(results)
    return handlers.respond(data, status=status)


async def post_batch(request: web.Request) -> web.StreamResponse:
    """A JSON array of filing events, or a CloudEvents batch."""
    if cloudevents.media_type(request.content_type) != cloudevents.BATCH:
        return await handlers.post_batch(request)
    body = await handlers.read_body(request, request.app[handlers.LIMITS]["batch"])
    items = cloudevents.from_batch(body)  # `[]` is a valid batch (http binding §3.3.2)
    items = [await _gated(request, item) for item in items]  # each refused on its own
    if len(items) > handlers.MAX_BATCH:
        raise errors.InvalidInput(
            f"a batch holds at most {handlers.MAX_BATCH} events",
            details=[{"loc": "body", "msg": f"{len(items)} events"}],
        )
    results = await request.app[INTAKE].submit_cloudevent_batch(
        items, actor=handlers.actor_of(request)
    )
    out = []
    for r in results:
        if isinstance(r, errors.GatewayError):
            out.append(
                {
                    "http_status": r.status,
                    "error": {"code": r.code, "message": r.message, "details": r.details},
                }
            )
        else:
            data, status = _one(r)
            out.append({"http_status": status, **data})
    accepted = sum(1 for r in results if not isinstance(r, errors.GatewayError))
    return handlers.respond(
        {"accepted": accepted, "rejected": len(results) - accepted, "results": out}
    )


async def _gate(request: web.Request, envelope: cloudevents.Envelope, key: str | None) -> None:
    """A token limited to filers, and the intake quotas, see the event's filings: it is
    normalized once more here, only when one of them applies (issue 22)."""
    principal = request[handlers.PRINCIPAL]
    quota = request.app[quotas.QUOTAS]
    if not (principal.scoped or quota.active):
        return
    for item in request.app[INTAKE].prepare_cloudevent(envelope, key=key).inbound():
        principal.may_submit(item.event.filer_code, item.event.environment.value)
        if quota.active:
            await quota.admit(principal, item)


async def _gated(
    request: web.Request, item: cloudevents.Envelope | errors.GatewayError
) -> cloudevents.Envelope | errors.GatewayError:
    if isinstance(item, errors.GatewayError):
        return item
    try:
        await _gate(request, item, None)
    except errors.GatewayError as exc:
        return exc
    return item


async def list_rejected(request: web.Request) -> web.Response:
    """Inbound events (queue messages, dropped files) that could not become filings."""
    q = request.query
    unknown = sorted(set(q) - {"source", "limit", "cursor"})
    if unknown:
        raise errors.InvalidInput(
            f"unknown query parameter {unknown[0]!r}",
            details=[{"loc": f"query.{u}", "msg": "unknown"} for u in unknown],
        )
    limit = inputs.query_int(request, "limit", default=50, low=1, high=500)
    items, cursor = await request.app[INTAKE].list_rejected(
        source=q.get("source"), limit=limit, cursor=q.get("cursor")
    )
    return handlers.respond(
        {"items": [i.model_dump(mode="json") for i in items], "next_cursor": cursor}
    )
