"""``POST /v1/callbacks/retry``: send dead (or waiting) status callbacks again, audited."""

from __future__ import annotations

from typing import Annotated, Any

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

from gateway import errors, models
from gateway.api import filers, handlers, ops
from gateway.rules import callbacks as callback_rules


class CallbackRetryRequest(BaseModel):
    """Which callbacks to send again, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="CallbackRetryRequest")

    ids: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list,
        max_length=500,
        description="These events (`evt_…`, dead or waiting_retry); else every dead one.",
    )
    filing_id: StrictStr | None = Field(default=None, description="Only this filing's.")
    not_after: Annotated[AwareDatetime | None, BeforeValidator(ops._string_time)] = Field(
        default=None, description="Only events last changed at or before this (the dry run's)."
    )
    limit: StrictInt = Field(default=100, ge=1, le=500, description="At most this many now.")
    dry_run: StrictBool = Field(default=False, description="Change nothing; count and list.")
    reason: StrictStr = Field(
        default="", max_length=1000, description="Why; required unless dry_run; audited."
    )


class CallbackRetryResponse(BaseModel):
    """What a callback retry did (or, with dry_run, would do)."""

    model_config = ConfigDict(frozen=True, title="CallbackRetryResponse")

    dry_run: bool
    matched: int = Field(description="Events matching before this call.")
    count: int = Field(description="Events retried now (dry run: that would be).")
    remaining: int = Field(description="Matching events left after this call.")
    as_of: AwareDatetime = Field(description="Pass back as `not_after` to pin the set.")
    callbacks: list[models.CallbackView]


async def retry(request: web.Request) -> web.Response:
    """Dead callbacks (by id, by filing, or all) go out again now; each retry is audited."""
    req = await handlers.read_model(request, CallbackRetryRequest, what="a callback retry")
    if not req.dry_run and not req.reason.strip():
        raise errors.InvalidInput(
            "a reason is required (it goes into the audit trail)",
            details=[{"loc": "body.reason", "msg": "required unless dry_run"}],
        )
    service = request.app[handlers.SERVICE]
    principal = request[handlers.PRINCIPAL]
    if principal.scoped:
        await _within_scope(request, req)
    as_of = service.clock.now()
    sel = callback_rules.CallbackSelection(
        ids=tuple(req.ids),
        filing_id=req.filing_id,
        not_after=req.not_after or as_of,
        limit=req.limit,
        dry_run=req.dry_run,
    )
    result = await service.store.retry_callbacks(
        sel, actor=handlers.actor_of(request), now=as_of, reason=req.reason
    )
    body = CallbackRetryResponse(
        dry_run=req.dry_run,
        matched=result.matched,
        count=len(result.callbacks),
        remaining=result.remaining,
        as_of=sel.not_after or as_of,
        callbacks=result.callbacks,
    )
    return handlers.respond(body)


async def _within_scope(request: web.Request, req: CallbackRetryRequest) -> None:
    """A principal scoped to filers names one of its filings; ids outside it are 404."""
    if req.filing_id is None:
        raise errors.Forbidden(
            f"token {request[handlers.PRINCIPAL].name!r} is limited to some filers: "
            "name a filing_id",
            details={"loc": "body.filing_id"},
        )
    await filers.visible_filing(request, request[handlers.PRINCIPAL], req.filing_id)
    if req.ids:
        store = request.app[handlers.SERVICE].store
        own = {
            c.id for c in await store.list_callbacks(filing_id=req.filing_id, state=None, limit=500)
        }
        for cb_id in req.ids:
            if cb_id not in own:
                raise errors.NotFound(f"no callback {cb_id}", details={"id": cb_id})


def openapi_paths(op: Any, ref: Any) -> dict[str, Any]:
    """The OpenAPI entry of this route (``op`` and ``ref`` from ``openapi_paths``)."""
    return {
        "/v1/callbacks/retry": {
            "post": op(
                "Send dead status callbacks again (dry_run previews; a reason is audited)",
                {200: (ref(CallbackRetryResponse), "What was retried (or would be)")},
                fails=(400, 404, 409, 413, 422),
                body={"application/json": {"schema": ref(CallbackRetryRequest)}},
            )
        }
    }
