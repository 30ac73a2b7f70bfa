"""``/openapi.json``, generated from the pydantic models so it cannot drift from them."""

from __future__ import annotations

from functools import cache
from typing import Any

from aiohttp import web
from pydantic.json_schema import models_json_schema

import gateway
from gateway import models, outages
from gateway.api import acks, ops

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
            for m in (
                models.FilingView,
                models.Delivery,
                outages.Outage,
                models.AckRecord,
                models.CallbackView,
            )
        ]
        + [(models.FilingEvent, "validation"), (outages.OutageRequest, "validation")]
        + [(models.Ack, "validation")]
        + [(ops.BulkRequest, "validation"), (ops.BulkResponse, "serialization")],
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
                    "content": {
                        "application/json": {"schema": _ref("FilingEvent")},
                        "application/cloudevents+json": {
                            "schema": {
                                "type": "object",
                                "description": "A CloudEvent 1.0 (structured mode); binary "
                                "mode sends ce-* headers. `type` picks the source's "
                                "normalizer, `id`+`source` are the idempotency key.",
                                "required": ["specversion", "id", "source", "type"],
                            }
                        },
                    },
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
                        },
                        "application/cloudevents-batch+json": {
                            "schema": {"type": "array", "items": {"type": "object"}}
                        },
                    },
                },
                "responses": {
                    "200": _json(_ref("BatchResult"), "Per-item results, in order"),
                    **_errors(400, 401, 403, 413, 422),
                },
            }
        },
        "/v1/rejected-events": {
            "get": {
                "summary": "Inbound events (queue messages, files) that could not become filings",
                "security": bearer,
                "parameters": [
                    q("source", {"type": "string"}),
                    q("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                    q("cursor", {"type": "string"}),
                ],
                "responses": {
                    "200": _json({"type": "object"}, "A page of rejected events"),
                    **_errors(401, 403, 422),
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
        "/v1/outages": {
            "post": {
                "summary": "Announce an outage of an adapter or an environment",
                "security": bearer,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("OutageRequest")}},
                },
                "responses": {
                    "201": _json(_ref("Outage"), "The outage, with its id"),
                    **_errors(400, 401, 403, 422),
                },
            },
            "get": {
                "summary": "Announced outages not yet over; ?upcoming=N adds calendar windows",
                "security": bearer,
                "responses": {"200": _json({"type": "object"}, "Outages"), **_errors(401, 403)},
            },
        },
        "/v1/outages/{id}": {
            "delete": {
                "summary": "Remove an announced outage (sending resumes at once)",
                "security": bearer,
                "parameters": id_param,
                "responses": {
                    "200": _json(_ref("Outage"), "The removed outage"),
                    **_errors(401, 403, 404, 409),
                },
            },
        },
        "/healthz": {
            "get": {
                "summary": "Process liveness (checks nothing external)",
                "responses": {"200": _json(_ref("Liveness"), "Alive")},
            }
        },
        "/livez": {
            "get": {
                "summary": "Process liveness (checks nothing external)",
                "responses": {"200": _json(_ref("Liveness"), "Alive")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: store, migrations, dispatcher, shutdown",
                "description": "200 `ready` or `degraded` (an adapter in an outage: filings "
                "are still accepted and queued); 503 `not_ready` naming the failing checks.",
                "responses": {
                    "200": _json(_ref("Readiness"), "Ready (or degraded)"),
                    "503": _json(_ref("Readiness"), "Not ready"),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "OpenAPI")},
            }
        },
    }
    # each batch item is validated on its own and answered in `results`, in order
    paths["/v1/filings/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"] = {
        "type": "array",
        "minItems": 1,
        "maxItems": 1000,
        "description": "Filing events (see FilingEvent); each object is validated on its own.",
        "items": {"type": "object"},
    }
    schemas.update(monitoring_schemas())
    paths.update(monitoring_paths(bearer, id_param))
    paths.update(acks.openapi_paths(bearer, _errors))
    # every operation that needs a token can answer 401 and 403, whoever wrote its entry
    for operations in paths.values():
        for op in operations.values():
            if isinstance(op, dict) and op.get("security"):
                for code, missing in _errors(401, 403).items():
                    op.setdefault("responses", {}).setdefault(code, missing)
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


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def monitoring_schemas() -> dict[str, Any]:
    """Schemas of the monitoring endpoints (issue 7)."""
    counts = {"type": "object", "additionalProperties": {"type": "integer"}}
    nullable_obj = {"anyOf": [{"type": "object"}, {"type": "null"}]}
    return {
        "Readiness": {
            "type": "object",
            "required": ["status", "checks", "failing", "degraded"],
            "properties": {
                "status": {"enum": ["ready", "degraded", "not_ready"]},
                "checks": {
                    "type": "object",
                    "description": "store, migrations, dispatcher, shutdown: `ok` or why not",
                    "additionalProperties": {"type": "string"},
                },
                "failing": {"type": "array", "items": {"type": "string"}},
                "degraded": {
                    "type": "object",
                    "description": "adapters in an outage (still accepting and queueing)",
                    "additionalProperties": {"type": "string"},
                },
            },
        },
        "Liveness": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"const": "ok"}},
        },
        "AdapterOverview": {
            "type": "object",
            "required": ["name", "counts", "waiting", "oldest_waiting_age_s"],
            "properties": {
                "name": {"type": "string"},
                "type": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "counts": counts,
                "waiting": {"type": "integer"},
                "oldest_waiting_age_s": {"anyOf": [{"type": "number"}, {"type": "null"}]},
                "health": nullable_obj,
                "breaker": nullable_obj,
                "gate": nullable_obj,
                "rate_limit": {"anyOf": [{"type": "number"}, {"type": "null"}]},
                "burst": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                "calendars": {"type": "array", "items": {"type": "string"}},
            },
        },
        "Overview": {
            "type": "object",
            "required": ["generated_at", "snapshot_at", "totals", "adapters", "at_risk"],
            "properties": {
                "generated_at": {"type": "string", "format": "date-time"},
                "snapshot_at": {"type": "string", "format": "date-time"},
                "totals": counts,
                "adapters": {"type": "array", "items": _ref("AdapterOverview")},
                "at_risk": {"type": "integer"},
                "acks": {
                    "anyOf": [counts, {"type": "null"}],
                    "description": "overdue / unmatched acks, once ack correlation is on",
                },
                "calendars": {"type": "object"},
                "outages": {"type": "array", "items": _ref("Outage")},
            },
        },
    }


def monitoring_paths(bearer: list[Any], id_param: list[Any]) -> dict[str, Any]:
    """Paths of the monitoring endpoints, the dashboard and the docs (issue 7)."""

    def bulk(verb: str, what: str) -> dict[str, Any]:
        return {
            "post": {
                "summary": f"{verb} deliveries matching a filter (dry_run previews)",
                "description": what,
                "security": bearer,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("BulkRequest")}},
                },
                "responses": {
                    "200": _json(_ref("BulkResponse"), "What changed (or would)"),
                    **_errors(400, 401, 403, 413, 422),
                },
            }
        }

    name = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
    return {
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text exposition)",
                "security": bearer,
                "responses": {
                    "200": {
                        "description": "Metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors(401, 403),
                },
            }
        },
        "/v1/overview": {
            "get": {
                "summary": "Queue, adapters, calendars and outages at a glance",
                "security": bearer,
                "responses": {
                    "200": _json(_ref("Overview"), "The overview"),
                    **_errors(401, 403, 422),
                },
            }
        },
        "/v1/deliveries/retry": bulk(
            "Retry", "Dead or blocked deliveries back to pending; `reason` is audited."
        ),
        "/v1/deliveries/cancel": bulk(
            "Cancel", "Cancel undelivered deliveries; `reason` is audited."
        ),
        "/docs": {"get": {"summary": "This API, as a page", "responses": {"200": _html("Docs")}}},
        "/": {"get": {"summary": "The dashboard", "responses": {"200": _html("Dashboard")}}},
        "/ui/": {"get": {"summary": "The dashboard", "responses": {"200": _html("Dashboard")}}},
        "/ui/panels": {
            "get": {
                "summary": "The dashboard's figures (HTML fragment)",
                "security": bearer,
                "responses": {"200": _html("Panels"), **_errors(401, 403, 422)},
            }
        },
        "/ui/filings/{id}": {
            "get": {
                "summary": "A filing's page",
                "parameters": id_param,
                "responses": {"200": _html("Filing page")},
            }
        },
        "/ui/filings/{id}/panel": {
            "get": {
                "summary": "A filing's deliveries and audit history (HTML fragment)",
                "security": bearer,
                "parameters": id_param,
                "responses": {"200": _html("Panel"), **_errors(401, 403, 404)},
            }
        },
        "/ui/static/{name}": {
            "get": {
                "summary": "The dashboard's script and style sheet",
                "parameters": name,
                "responses": {
                    "200": {
                        "description": "The file",
                        "content": {
                            "text/javascript": {"schema": {"type": "string"}},
                            "text/css": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(404),
                },
            }
        },
    }


async def handler(request: web.Request) -> web.Response:
    return web.json_response(spec())
