"""Pauses (issue 21) over HTTP: ``POST /v1/pauses`` (scope operate), ``GET /v1/pauses``
(read; ``?all=true`` includes resumed ones), ``DELETE /v1/pauses/{id}`` (operate: resume
now). Mirrors ``/v1/outages``; the service validates and audits."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from gateway import errors
from gateway.api import inputs
from gateway.api.handlers import SERVICE, actor_of, read_model, respond
from gateway.api.schemas.errors import SHAPE
from gateway.rules import outages


async def post_pause(request: web.Request) -> web.Response:
    req = await read_model(request, outages.PauseRequest, what="a pause", prefix="body.")
    pause = await request.app[SERVICE].add_pause(req, actor=actor_of(request))
    return respond(pause, status=201)


async def list_pauses(request: web.Request) -> web.Response:
    q = request.query
    inputs.only_params(request, {"all"})
    flag = q.get("all", "false")
    if flag not in ("true", "false"):
        raise errors.InvalidInput(
            "all must be true or false", details=[{"loc": "query.all", "msg": "true or false"}]
        )
    return respond(await request.app[SERVICE].list_pauses(include_resumed=flag == "true"))


async def delete_pause(request: web.Request) -> web.Response:
    pause = await request.app[SERVICE].resume_pause(
        request.match_info["id"], actor=actor_of(request)
    )
    return respond(pause)


class PauseList(BaseModel):
    """``GET /v1/pauses``: pauses in force (with ``?all=true``, resumed ones too)."""

    model_config = SHAPE

    pauses: list[outages.Pause]


def openapi_paths(op: Any, query: Any, path_param: Any, ref: Any) -> dict[str, Any]:
    """The OpenAPI entries of these routes (``op`` … ``ref`` from ``openapi_paths``)."""
    return {
        "/v1/pauses": {
            "post": op(
                "Pause an adapter, a filing type, or a type on one adapter (audited)",
                {201: (ref(outages.Pause), "The pause, with its id")},
                fails=(400, 413, 422),
                body={"application/json": {"schema": ref(outages.PauseRequest)}},
            ),
            "get": op(
                "Pauses in force; ?all=true adds resumed ones",
                {200: (ref(PauseList), "Pauses")},
                fails=(422,),
                params=[query("all", {"type": "boolean"})],
            ),
        },
        "/v1/pauses/{id}": {
            "delete": op(
                "Resume now: what the pause held goes out at the adapter's rate limit",
                {200: (ref(outages.Pause), "The resumed pause")},
                fails=(404, 409),
                params=[path_param("id")],
            )
        },
    }
