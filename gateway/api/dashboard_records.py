"""The dashboard's records pages (issue 20): a search box over the live store and the
archive, and a record's page (its whole history, the exact payload sent, where it lives,
Restore).

As the rest of the dashboard: pages (``/ui/records``, ``/ui/records/{id}``) are public
shells; their content comes from fragments (``/ui/records/panel?…``,
``/ui/records/{id}/panel``) that need scope ``read`` and that ``static/records.js`` fetches
with the token kept in ``sessionStorage``. With auth off the shell is rendered with its
fragment inline. The work is ``service.records.Records``, called exactly as
``api/records.py`` calls it, so a token limited to filer codes finds its own records only
and another filer's id answers the 404 of a missing one. Restore posts to
``POST /v1/records/{id}/restore`` (scope ``operate``) with the reason typed on the page.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from markupsafe import escape

from gateway import errors, models
from gateway.api import handlers, inputs
from gateway.api.dashboard import html, item_page
from gateway.api.handlers import PRINCIPAL
from gateway.api.records import RECORDS
from gateway.records import errors as rerrors
from gateway.records.query import from_micros
from gateway.service.records import FIELDS, Search

#: rows of a results page (``limit`` changes it, 1-500 as in the API)
PAGE = 50
#: the filters besides the identifier fields, and the rest a panel takes
_FILTERS = ("filer_code", "filing_type", "environment", "state")
_OTHER = ("received_from", "received_to", "limit", "cursor")
#: the search form's identifier boxes (label, query name)
BOXES = (
    ("Reference", "reference"),
    ("Entry number", "entry_number"),
    ("Bill of lading", "bill_of_lading"),
    ("ISF number", "isf_transaction_number"),
    ("Ack code", "ack_code"),
)


def _given(request: web.Request) -> dict[str, str]:
    """The query's non-empty values (a form sends its empty boxes too)."""
    return {k: v for k, v in request.query.items() if v.strip()}


def _time(name: str, text: str) -> datetime:
    """A date (``2026-12-03``: that day's start in UTC; as ``received_to``, the next day's,
    so the day counts) or an ISO 8601 time with its offset; 422 naming the field."""
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text).replace(tzinfo=UTC)
            return day + timedelta(days=1) if name == "received_to" else day
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise rerrors.BadQuery("a date (YYYY-MM-DD) or an ISO 8601 time with offset", field=name)
    return value


def _search(request: web.Request) -> tuple[Search, dict[str, str]]:
    """The panel's query as a records search (a token's filer set narrows it)."""
    fields = {*FIELDS, *request.app[RECORDS].section.fields}
    inputs.only_params(request, {*fields, *_FILTERS, *_OTHER})
    q = _given(request)
    for name, text in q.items():
        if (problem := inputs.problem(text)) is not None:
            raise rerrors.BadQuery(problem, field=name)
    search = Search(
        terms={name: q[name] for name in sorted(fields) if name in q},
        filer_code=q.get("filer_code"),
        filing_type=q.get("filing_type"),
        environment=q.get("environment"),
        state=q.get("state"),
        received_from=_time("received_from", q["received_from"]) if "received_from" in q else None,
        received_to=_time("received_to", q["received_to"]) if "received_to" in q else None,
        limit=inputs.query_int(request, "limit", default=PAGE, low=1, high=500),
        cursor=q.get("cursor"),
        **request[PRINCIPAL].filters(),
    )
    return search, q


async def _resultshtml(request: web.Request) -> str:
    search, q = _search(request)
    items, cursor = await request.app[RECORDS].search(search)
    more = None
    if cursor is not None:
        more = "/ui/records?" + urlencode({**{k: v for k, v in q.items() if k != "cursor"},
                                           "cursor": cursor})  # fmt: skip
    context = {"items": items, "more": more, "searched": bool(q), "first": "cursor" not in q}
    return aiohttp_jinja2.render_string("records_results.html", request, context)


def _micros(value: Any) -> str:
    """A stored time (microseconds since the epoch, or already text) as text."""
    if value is None or value == "":
        return ""
    if isinstance(value, int):
        return from_micros(value).strftime("%Y-%m-%d %H:%M:%S.%fZ")
    return str(value)


def _text(value: Any) -> str:
    """A stored column (JSON text, a dict, a number) as one line of text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


async def _recordhtml(request: web.Request, record_id: str) -> str:
    data = await request.app[RECORDS].show(record_id, request[PRINCIPAL].sees)
    rec = data["record"]
    context = {
        "r": data,
        "f": rec["filing"],
        "rec": rec,
        "micros": _micros,
        "text": _text,
    }
    return aiohttp_jinja2.render_string("records_panel.html", request, context)


def _page(request: web.Request) -> dict[str, Any]:
    return {
        "auth_enabled": request.app[handlers.AUTH].enabled,
        "refresh_ms": 0,
        "inline": "",
    }


async def search_page(request: web.Request) -> web.Response:
    """The records search page (public shell; its results need scope read)."""
    q = _given(request)
    page = {
        **_page(request),
        "q": q,
        "boxes": BOXES,
        "filing_types": [t.value for t in models.FilingType],
        "environments": [e.value for e in models.Environment],
        "states": [s.value for s in models.FilingStatus],
    }
    if not page["auth_enabled"]:
        try:
            page["inline"] = await _resultshtml(request)
        except errors.InvalidInput as exc:
            page["inline"] = f'<p class="bad">{escape(exc.message)}</p>'
    return html(aiohttp_jinja2.render_string("records.html", request, page))


async def search_panel(request: web.Request) -> web.Response:
    """One page of records found (HTML fragment): live and archived, newest first."""
    return html(await _resultshtml(request))


async def record_page(request: web.Request) -> web.Response:
    """A record's page (public shell)."""
    record_id = request.match_info["id"]
    page = {**_page(request), "record_id": record_id}
    missing = f"no record {record_id}"
    return await item_page(request, page, "records_record.html", record_id, _recordhtml, missing)


async def record_panel(request: web.Request) -> web.Response:
    """A record's whole history and payload (HTML fragment); outside the token's filers or
    missing: 404."""
    return html(await _recordhtml(request, request.match_info["id"]))
