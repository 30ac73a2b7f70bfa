"""``/v1/records`` (issue 20): search over the live store and the archive (one keyset
cursor for both), a filing's whole record, and restore from the archive. The work is
``gateway.service.records``; a bad parameter is a 422 naming it."""

from __future__ import annotations

import os
from datetime import datetime

from aiohttp import web

from gateway import config, errors
from gateway.api import inputs
from gateway.api.handlers import PRINCIPAL, actor_of, read_json, respond
from gateway.records import errors as rerrors
from gateway.service import Service, sealing
from gateway.service.records import FIELDS, Records, Search

RECORDS = web.AppKey("records", Records)

#: the query parameters besides the identifier fields
_FILTERS = ("filer_code", "filing_type", "environment", "state")
_OTHER = ("received_from", "received_to", "limit", "cursor")


def setup(app: web.Application, service: Service, cfg: config.Config) -> None:
    """Give the app its records (a bad keyring stops start-up here, naming the variable)."""
    records = Records(store=service.store, cfg=cfg, clock=service.clock, environ=os.environ)
    app[RECORDS] = records

    async def check_keys(_: web.Application) -> None:
        await sealing.check_keys(service.store)  # a key in use missing or wrong: stop

    app.on_startup.append(check_keys)

    async def close(_: web.Application) -> None:
        records.close()

    app.on_cleanup.append(close)


def _time(request: web.Request, name: str) -> datetime | None:
    text = request.query.get(name)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise rerrors.BadQuery("an ISO 8601 time with its offset", field=f"query.{name}")
    return value


async def search(request: web.Request) -> web.Response:
    """One page of records, live and archived merged newest first (a token limited to
    filers finds theirs only)."""
    records = request.app[RECORDS]
    q = request.query
    fields = {*FIELDS, *records.section.fields}
    inputs.only_params(request, {*fields, *_FILTERS, *_OTHER})
    s = Search(
        terms={name: q[name] for name in sorted(fields) if name in q},
        filer_code=q.get("filer_code"),
        filing_type=q.get("filing_type"),
        environment=q.get("environment"),
        state=q.get("state"),
        received_from=_time(request, "received_from"),
        received_to=_time(request, "received_to"),
        limit=inputs.query_int(request, "limit", default=50, low=1, high=500),
        cursor=q.get("cursor"),
        **request[PRINCIPAL].filters(),
    )
    items, cursor = await records.search(s)
    return respond({"items": items, "next_cursor": cursor})


async def show(request: web.Request) -> web.Response:
    """A filing's whole record, live or archived: every row, the payload as sent."""
    records, principal = request.app[RECORDS], request[PRINCIPAL]
    return respond(await records.show(request.match_info["id"], principal.sees))


async def restore(request: web.Request) -> web.Response:
    """Bring an archived filing back into the live store, with a reason (audited)."""
    data = await read_json(request, 65536) if request.can_read_body else None
    reason = data.get("reason") if isinstance(data, dict) else None
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 1000:
        raise errors.InvalidInput(
            'the body is {"reason": "…"} (required, at most 1000 characters)',
            details=[{"loc": "body.reason", "msg": "a non-empty string"}],
        )
    records = request.app[RECORDS]
    return respond(
        await records.restore(
            request.match_info["id"],
            reason=reason,
            actor=actor_of(request),
            visible=request[PRINCIPAL].sees,
        )
    )
