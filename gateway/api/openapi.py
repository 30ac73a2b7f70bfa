"""``/openapi.json``, generated from the pydantic models so it cannot drift from them."""

from __future__ import annotations

from functools import cache
from typing import Any

from aiohttp import web
from pydantic.json_schema import models_json_schema

import gateway
from gateway import models
from gateway.api import acks

_REF = "#/components/schemas/{model}"


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {},
                },
            }
        },
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed JSON",
        401: "Missing or invalid token",
        403: "Token lacks the scope",
        404: "Not found",
        409: "The current state forbids this action",
        413: "Body too large",
        422: "Invalid, unroutable, or idempotency key reused",
        503: "Not ready",
    }
    return {str(c): _json(_ref("Error"), text[c]) for c in codes}


@cache
def spec() -> dict[str, Any]:
    _, defs = models_json_schema(
        [
            (m, "serialization")
            for m in (models.FilingView, models.Delivery, models.AckRecord, models.CallbackView)
        ]
        + [(models.FilingEvent, "validation"), (models.Ack, "validation")],
        ref_template=_REF,
    )
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["Error"] = _error_schema()
    schemas["Submitted"] = {
        "type": "object",
        "required": ["id", "status", "created", "deliveries"],
        "properties": {
            "id": {"type": "string"},
            "status": _ref("FilingStatus"),
            "created": {"type": "boolean"},
            "deliveries": {"type": "array", "items": _ref("Delivery")},
        },
    }
    schemas["FilingPage"] = {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": _ref("FilingView")},
            "next_cursor": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
    }
    schemas["BatchResult"] = {
        "type": "object",
        "required": ["accepted", "rejected", "results"],
        "properties": {
            "accepted": {"type": "integer"},
            "rejected": {"type": "integer"},
            "results": {"type": "array", "items": {"type": "object"}},
        },
    }
    bearer = [{"bearer": []}]
    id_param = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]

    def q(name: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": schema}

    paths: dict[str, Any] = {
        "/v1/filings": {
            "post": {
                "summary": "Submit a filing event",
                "security": bearer,
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 255},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("FilingEvent")}},
                },
                "responses": {
                    "202": _json(_ref("Submitted"), "Accepted and stored"),
                    "200": _json(_ref("Submitted"), "Duplicate of an earlier submission"),
                    **_errors(400, 401, 403, 413, 422),
                },
            },
            "get": {
                "summary": "List filings (newest first, cursor pagination)",
                "security": bearer,
                "parameters": [
                    q("status", _ref("FilingStatus")),
                    q("state", _ref("DeliveryState")),
                    q("filing_type", _ref("FilingType")),
                    q("environment", _ref("Environment")),
                    q("reference", {"type": "string"}),
                    q("adapter", {"type": "string"}),
                    q("since", {"type": "string", "format": "date-time"}),
                    q("until", {"type": "string", "format": "date-time"}),
                    q("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                    q("cursor", {"type": "string"}),
                ],
                "responses": {
                    "200": _json(_ref("FilingPage"), "A page of filings"),
                    **_errors(401, 403, 422),
                },
            },
        },
        "/v1/filings/batch": {
            "post": {
                "summary": "Submit up to 1,000 events in one transaction",
                "security": bearer,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "array",
                                "items": _ref("FilingEvent"),
                                "maxItems": 1000,
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(_ref("BatchResult"), "Per-item results, in order"),
                    **_errors(400, 401, 403, 413, 422),
                },
            }
        },
        "/v1/filings/{id}": {
            "get": {
                "summary": "A filing with its deliveries",
                "security": bearer,
                "parameters": id_param,
                "responses": {
                    "200": _json(_ref("FilingView"), "The filing"),
                    **_errors(401, 403, 404),
                },
            },
        },
        "/v1/filings/{id}/history": {
            "get": {
                "summary": "A filing's audit rows",
                "security": bearer,
                "parameters": id_param,
                "responses": {
                    "200": _json({"type": "object"}, "Audit rows"),
                    **_errors(401, 403, 404),
                },
            },
        },
        "/v1/filings/{id}/retry": {
            "post": {
                "summary": "Dead or blocked deliveries back to pending",
                "security": bearer,
                "parameters": id_param,
                "responses": {
                    "200": _json(_ref("FilingView"), "The filing after"),
                    **_errors(401, 403, 404, 409),
                },
            },
        },
        "/v1/filings/{id}/cancel": {
            "post": {
                "summary": "Cancel deliveries not yet delivered",
                "security": bearer,
                "parameters": id_param,
                "responses": {
                    "200": _json(_ref("FilingView"), "The filing after"),
                    **_errors(401, 403, 404, 409),
                },
            },
        },
        "/v1/adapters": {
            "get": {
                "summary": "Configured adapters, health and delivery counts",
                "security": bearer,
                "responses": {"200": _json({"type": "object"}, "Adapters"), **_errors(401, 403)},
            },
        },
        "/healthz": {
            "get": {
                "summary": "Process liveness",
                "responses": {"200": _json({"type": "object"}, "Alive")},
            }
        },
        "/livez": {
            "get": {
                "summary": "Process liveness",
                "responses": {"200": _json({"type": "object"}, "Alive")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness (store, dispatcher, shutdown)",
                "responses": {"200": _json({"type": "object"}, "Ready"), **_errors(503)},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "OpenAPI")},
            }
        },
    }
    paths.update(acks.openapi_paths(bearer, _errors))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "edi-gateway",
            "version": gateway.__version__,
            "description": "Filing events in; deliveries to CBP ACE transports out.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


async def handler(request: web.Request) -> web.Response:
    return web.json_response(spec())
