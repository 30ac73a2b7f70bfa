"""``GET /v1/x12/gaps``: X12 control numbers allocated but never sent, or never answered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from gateway import durations, errors, values
from gateway.api import handlers

_PARAMS = {"sender", "receiver", "usage", "since", "until", "older_than", "kind", "limit"}


def _bad(name: str, message: str) -> errors.InvalidInput:
    return errors.InvalidInput(
        f"{name}: {message}", details=[{"loc": f"query.{name}", "msg": message}]
    )


def _time(query: Any, name: str) -> datetime | None:
    text = query.get(name)
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(name, "an ISO 8601 date-time, e.g. 2026-12-01T00:00:00Z") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def parse_query(query: Any, now: datetime) -> values.GapQuery:
    """The query string → a GapQuery; 422 naming the parameter at fault."""
    unknown = sorted(set(query) - _PARAMS)
    if unknown:
        raise _bad(unknown[0], "unknown query parameter")
    usage = query.get("usage")
    if usage is not None and usage not in ("T", "P"):
        raise _bad("usage", "T (test) or P (production)")
    kind = query.get("kind")
    if kind is not None and kind not in values.GAP_KINDS:
        raise _bad("kind", "unsent or unacknowledged")
    limit_text = query.get("limit", "100")
    if not (limit_text.isascii() and limit_text.isdigit()) or not 1 <= int(limit_text) <= 1000:
        raise _bad("limit", "an integer from 1 to 1000")
    until = _time(query, "until")
    if "older_than" in query:
        try:
            age = durations.parse_duration(query["older_than"])
        except ValueError as exc:
            raise _bad("older_than", str(exc)) from None
        cut = now - timedelta(seconds=age)
        until = cut if until is None else min(until, cut)
    return values.GapQuery(
        sender=query.get("sender"),
        receiver=query.get("receiver"),
        usage=usage,
        since=_time(query, "since"),
        until=until,
        kinds=(kind,) if kind else values.GAP_KINDS,
        limit=int(limit_text),
    )


async def gaps(request: web.Request) -> web.Response:
    """Per sender/receiver/usage: allocated numbers never sent, or sent and never answered."""
    service = request.app[handlers.SERVICE]
    q = parse_query(request.query, service.clock.now())
    return handlers.respond(await service.store.x12_gaps(q))


def openapi_paths(op: Any, q: Any, ref: Any) -> dict[str, Any]:
    """The OpenAPI entry of this route (``op``, ``q`` and ``ref`` from ``openapi_paths``)."""
    text = {"type": "string"}
    return {
        "/v1/x12/gaps": {
            "get": op(
                "X12 control numbers allocated but never sent, or sent and never acknowledged",
                {200: (ref(values.X12GapReport), "Counts per pair, then the gaps")},
                fails=(422,),
                params=[
                    q("sender", text, "ISA06 qualifier:id, e.g. `ZZ:MAEU`."),
                    q("receiver", text),
                    q("usage", {"type": "string", "enum": ["T", "P"]}),
                    q("since", {"type": "string", "format": "date-time"}),
                    q("until", {"type": "string", "format": "date-time"}),
                    q("older_than", text, "Only numbers allocated longer ago, e.g. `15m`."),
                    q("kind", {"type": "string", "enum": list(values.GAP_KINDS)}),
                    q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                ],
            )
        }
    }
