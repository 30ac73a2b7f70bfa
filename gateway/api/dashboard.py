"""The operations dashboard (issues 7, 21): server-rendered with Jinja2, kept live by a
small script of our own over server-sent events (``gateway.api.live``), with SVG charts
drawn here (``gateway.api.charts``); no CDN, no build step, no chart library.

Pages (``/``, ``/ui/``, ``/ui/filings/{id}``) are public shells: a browser cannot send a
bearer header on navigation. Their figures come from fragments (``/ui/panels``,
``/ui/filings/{id}/panel``) that need scope ``read``; the page's script fetches them with
the token it keeps in ``sessionStorage``. With auth off the shell is rendered with its
panels inline, so the page works without the script too. Buttons call the JSON API
(scope ``operate``), which audits each action with the token's name.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from importlib import resources
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markupsafe import escape

from gateway import errors, models
from gateway.api import charts, handlers, inbound, inputs, live, openapi, ops
from gateway.values import ListFilter

#: how often the page polls its panels while the event stream is down
REFRESH_MS = 3000
#: rows in each list (dead, blocked, at risk)
LIST_LIMIT = 50
STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
STATIC["records.js"] = "text/javascript"  # the records pages' script (dashboard_records)
HTML = "text/html"
FILER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,34}")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").replace(" UTC", "Z")


def _schema(s: Any) -> str:
    """A JSON schema in a few characters, for the docs page."""
    if not isinstance(s, dict):
        return ""
    if "$ref" in s:
        return str(s["$ref"]).rsplit("/", 1)[-1]
    for key in ("anyOf", "oneOf"):
        if key in s:
            return " | ".join(_schema(x) for x in s[key])
    if s.get("type") == "array":
        return f"[{_schema(s.get('items', {}))}]"
    if "enum" in s:
        return " | ".join(str(v) for v in s["enum"])
    text = str(s.get("type", "any"))
    if "format" in s:
        text += f" ({s['format']})"
    return text


def setup(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("gateway.api", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
    )
    env.filters.update(
        age=_age, when=_when, schema=_schema, slug=lambda p: re.sub(r"[^a-z0-9]+", "-", p)
    )
    live.setup(app, render_panels)
    charts.setup(app)


def _page(request: web.Request) -> dict[str, Any]:
    cfg = request.app[handlers.SERVICE].cfg
    return {
        "auth_enabled": request.app[handlers.AUTH].enabled,
        "refresh_ms": REFRESH_MS,
        "adapters": sorted(cfg.adapters),
        "filing_types": [t.value for t in models.FilingType],
    }


def filer_of(request: web.Request) -> str | None:
    """The dashboard's filer filter (``?filer=CODE``); 422 naming it when malformed."""
    inputs.only_params(request, {"filer"})
    filer = request.query.get("filer") or None
    if filer is not None and not FILER.fullmatch(filer):
        raise errors.InvalidInput(
            "filer is a filer code (letters, digits, '-'; up to 35)",
            details=[{"loc": "query.filer", "msg": "not a filer code"}],
        )
    return filer


async def render_panels(app: web.Application, filer: str | None) -> str:
    """The dashboard's figures; with ``filer``, its lists show that filer's filings only."""
    service = app[handlers.SERVICE]
    ov = await app[ops.MONITOR].overview(filer=filer)
    codes = None if filer is None else (filer,)

    async def items(**flt: Any) -> list[models.FilingView]:
        return (await service.list(ListFilter(filer_codes=codes, **flt), limit=LIST_LIMIT)).items

    rejected, _ = await app[inbound.INTAKE].list_rejected(
        source=None, limit=LIST_LIMIT, cursor=None
    )
    context = {
        "ov": ov,
        "filer": filer,
        "states": [s.value for s in models.DeliveryState],
        "dead": await items(state=models.DeliveryState.DEAD),
        "blocked": await items(state=models.DeliveryState.BLOCKED),
        "at_risk": await items(at_risk=True),
        "ack_conflicts": await items(ack_conflict=True),
        "rejected": rejected,
        "pauses": (await service.list_pauses())["pauses"],
        "charts": await charts.render(app),
    }
    template = aiohttp_jinja2.get_env(app).get_template("panels.html")
    return template.render(context)


async def _filing_html(request: web.Request, filing_id: str) -> str:
    service = request.app[handlers.SERVICE]
    view = await service.get(filing_id)
    history = await service.history(filing_id)
    return aiohttp_jinja2.render_string(
        "filing_panel.html", request, {"f": view, "history": history}
    )


def html(text: str) -> web.Response:
    return web.Response(text=text, content_type=HTML, headers={"Cache-Control": "no-store"})


async def index(request: web.Request) -> web.Response:
    """The dashboard page (public shell; its figures need scope read)."""
    page = _page(request)
    page["inline"] = "" if page["auth_enabled"] else await render_panels(request.app, None)
    return html(aiohttp_jinja2.render_string("index.html", request, page))


async def panels(request: web.Request) -> web.Response:
    """The dashboard's figures as an HTML fragment (``?filer=CODE``: that filer's lists)."""
    return html(await render_panels(request.app, filer_of(request)))


async def events(request: web.Request) -> web.StreamResponse:
    """The dashboard's figures as server-sent events: now, then on each change."""
    return await live.events(request, filer_of(request))


async def item_page(
    request: web.Request,
    page: dict[str, Any],
    template: str,
    item_id: str,
    render: Callable[[web.Request, str], Awaitable[str]],
    missing: str,
) -> web.Response:
    """One item's page (a filing's, a record's; public shell): with auth off its panel
    (``render``) is inline, and a malformed or unknown id is the panel's 404 in words."""
    if not page["auth_enabled"]:
        try:
            if inputs.problem(item_id) is not None:  # no item has such an id
                raise errors.NotFound(missing)
            page["inline"] = await render(request, item_id)
        except errors.NotFound as exc:
            page["inline"] = f'<p class="bad">{escape(exc.message)}</p>'
    return html(aiohttp_jinja2.render_string(template, request, page))


async def filing_page(request: web.Request) -> web.Response:
    """A filing's page (public shell)."""
    filing_id = request.match_info["id"]
    page = {**_page(request), "filing_id": filing_id, "inline": ""}
    missing = f"no filing {filing_id!r}"
    return await item_page(request, page, "filing.html", filing_id, _filing_html, missing)


async def filing_panel(request: web.Request) -> web.Response:
    """A filing's deliveries and audit history as an HTML fragment."""
    return html(await _filing_html(request, request.match_info["id"]))


async def static(request: web.Request) -> web.Response:
    """The dashboard's own script and style sheet, shipped inside the package."""
    name = request.match_info["name"]
    if name not in STATIC:
        raise errors.NotFound(f"no static file {name!r}", details={"name": name})
    text = resources.files("gateway.api").joinpath("static").joinpath(name).read_text("utf-8")
    return web.Response(
        text=text, content_type=STATIC[name], headers={"Cache-Control": "max-age=300"}
    )


async def docs(request: web.Request) -> web.Response:
    """The API reference, rendered from ``/openapi.json`` on the server."""
    return html(aiohttp_jinja2.render_string("docs.html", request, {"spec": openapi.spec()}))
