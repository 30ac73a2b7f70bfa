"""``/openapi.json``, generated from the pydantic models so it cannot drift from them.

Every JSON body, asked or answered, is a model: requests from ``gateway.models`` and the
request models of the handlers, responses from ``gateway.api.schemas``; which operation
takes and answers which is said in ``gateway.api.openapi_paths``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

import gateway
from gateway import models, values
from gateway.api import admin, callback_ops, controls, ops, replay, schemas, x12
from gateway.api import openapi_paths as paths
from gateway.api.openapi_paths import parts
from gateway.rules import outages

#: request bodies (validated as such); everything in ``schemas.RESPONSES`` is an answer
_REQUESTS: tuple[type[BaseModel], ...] = (
    models.FilingEvent,
    models.Ack,
    outages.OutageRequest,
    outages.PauseRequest,
    ops.BulkRequest,
    callback_ops.CallbackRetryRequest,
    replay.ReplayRequest,
)


#: the answers of the CLI's operator routes (issue 21)
_CLI_RESPONSES: tuple[type[BaseModel], ...] = (
    admin.ReloadResponse,
    callback_ops.CallbackRetryResponse,
    values.X12GapReport,
    controls.PauseList,
    replay.ReplayResponse,
)


def components() -> dict[str, Any]:
    """Every model's JSON Schema, under its class name."""
    answers: tuple[type[BaseModel], ...] = (*schemas.RESPONSES, ops.BulkResponse, *_CLI_RESPONSES)
    _, defs = models_json_schema(
        [(m, "validation") for m in _REQUESTS] + [(m, "serialization") for m in answers],
        ref_template=paths.REF,
    )
    return dict(defs.get("$defs", {}))


@cache
def spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "edi-gateway",
            "version": gateway.__version__,
            "description": "Filing events in; deliveries to CBP ACE transports out.",
        },
        "paths": {
            **paths.filing_paths(),
            **paths.ack_paths(),
            **paths.operation_paths(),
            **paths.record_paths(),
            **callback_ops.openapi_paths(paths.op, paths.ref),
            **admin.openapi_paths(paths.op, paths.ref),
            **x12.openapi_paths(paths.op, paths.query, paths.ref),
            **controls.openapi_paths(paths.op, paths.query, parts.path_param, paths.ref),
            **replay.openapi_paths(paths.op, parts.path_param, paths.ref),
        },
        "components": {
            "schemas": components(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


async def handler(request: web.Request) -> web.Response:
    return web.json_response(spec())
