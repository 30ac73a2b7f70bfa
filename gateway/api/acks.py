"""HTTP handlers for acknowledgements, ack deadlines and status callbacks."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway import errors, models
from gateway.api import auth, filers, inputs
from gateway.api.handlers import (
    LIMITS,
    PRINCIPAL,
    SERVICE,
    actor_of,
    read_json,
    respond,
)
from gateway.encoding import jsonio

_BOOL = {"true": True, "false": False}


def record_json(record: models.AckRecord) -> dict[str, Any]:
    data = record.model_dump(mode="json")
    data["ack"].pop("raw", None)
    return data


async def _read_raw(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise errors.PayloadTooLarge(
            f"body is {request.content_length} bytes; the limit is {limit}",
            details={"limit_bytes": limit},
        )
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise errors.PayloadTooLarge(
                f"body is larger than the limit of {limit} bytes", details={"limit_bytes": limit}
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def post_acks(request: web.Request) -> web.Response:
    """Store acks: JSON (one or a list), or a raw TA1/997/999 with its content type."""
    body = await _read_raw(request, request.app[LIMITS]["body"])
    if not body.strip():
        raise errors.MalformedInput("the request body is empty; send an ack")
    if body.lstrip()[:1] in (b"{", b"["):
        jsonio.loads(body)  # refuses what the ack parser must never see: too deep, not text
    records = await request.app[SERVICE].acks.receive_document(
        request.content_type,
        body,
        actor=actor_of(request),
        source=f"api:{request[PRINCIPAL].name}",
    )
    return respond(
        {
            "acks": [record_json(r) for r in records],
            "matched": sum(r.matched for r in records),
            "unmatched": sum(not r.matched for r in records),
            "duplicates": sum(r.duplicate for r in records),
        }
    )


def _flag(request: web.Request, name: str) -> bool | None:
    value = request.query.get(name)
    if value is None:
        return None
    if value.lower() not in _BOOL:
        raise errors.InvalidInput(
            f"{name} must be true or false", details=[{"loc": f"query.{name}", "msg": "bool"}]
        )
    return _BOOL[value.lower()]


def _limit(request: web.Request) -> int:
    return inputs.query_int(request, "limit", default=50, low=1, high=500)


async def one_filing_of_scoped(request: web.Request) -> str | None:
    """For a principal scoped to filers: the ``filing_id`` it must name (404 outside its
    set); for others the optional ``filing_id`` as given."""
    principal: auth.Principal = request[PRINCIPAL]
    filing_id = request.query.get("filing_id")
    if principal.scoped:
        if filing_id is None:
            raise errors.Forbidden(
                f"token {principal.name!r} is limited to some filers: name a filing_id",
                details={"loc": "query.filing_id"},
            )
        await filers.visible_filing(request, principal, filing_id)
    return filing_id


async def list_acks(request: web.Request) -> web.Response:
    """Acks, newest first; ``matched=false`` lists those that matched no filing."""
    filing_id = await one_filing_of_scoped(request)
    records = await request.app[SERVICE].acks.list(
        matched=_flag(request, "matched"),
        filing_id=filing_id,
        limit=_limit(request),
    )
    return respond({"items": [record_json(r) for r in records]})


async def filing_acks(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    filing_id = request.match_info["id"]
    await service.get(filing_id)
    records = await service.acks.list(filing_id=filing_id, limit=_limit(request))
    return respond({"filing_id": filing_id, "items": [record_json(r) for r in records]})


async def _reason(request: web.Request) -> str:
    if not request.can_read_body:
        return ""
    data = await read_json(request, 65536)
    reason = data.get("reason", "") if isinstance(data, dict) else None
    if not isinstance(reason, str) or len(reason) > 1000:
        raise errors.InvalidInput(
            'the body is {"reason": "…"} (at most 1000 characters)',
            details=[{"loc": "reason", "msg": "string"}],
        )
    return reason


async def resend_filing(request: web.Request) -> web.Response:
    """Operator: send a delivered filing again (same delivery id, a new interchange)."""
    service = request.app[SERVICE]
    filing_id = request.match_info["id"]
    changed = await service.acks.resend(
        filing_id, actor=actor_of(request), reason=await _reason(request)
    )
    view = await service.get(filing_id)
    return respond({"resent": changed, "filing": view.model_dump(mode="json")})


async def close_ack(request: web.Request) -> web.Response:
    """Operator: stop waiting for an ack of a delivered filing."""
    service = request.app[SERVICE]
    filing_id = request.match_info["id"]
    changed = await service.acks.close(
        filing_id, actor=actor_of(request), reason=await _reason(request)
    )
    view = await service.get(filing_id)
    return respond({"closed": changed, "filing": view.model_dump(mode="json")})


async def list_callbacks(request: web.Request) -> web.Response:
    """Queued, delivered and dead status callbacks (``state=dead`` is the dead-letter list)."""
    filing_id = await one_filing_of_scoped(request)
    items = await request.app[SERVICE].store.list_callbacks(
        filing_id=filing_id,
        state=request.query.get("state"),
        limit=_limit(request),
    )
    return respond({"items": [i.model_dump(mode="json") for i in items]})
