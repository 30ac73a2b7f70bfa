"""The operations of ``/openapi.json``: which path and method takes and answers which model.

The models themselves are in ``gateway.models`` (requests, shared shapes) and
``gateway.api.schemas`` (answers); ``gateway.api.openapi`` puts the two together.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from pydantic import BaseModel

from gateway import models
from gateway.api import ops, schemas
from gateway.rules import outages

REF = "#/components/schemas/{model}"

_ERROR_TEXT = {
    400: "Malformed JSON",
    401: "Missing or invalid token",
    403: "Token lacks the scope",
    404: "Not found",
    409: "The current state forbids this action",
    413: "Body too large",
    422: "Invalid, unroutable, or idempotency key reused",
    503: "Not ready",
}


def ref(name: str | type[BaseModel] | type[Enum]) -> dict[str, str]:
    """A ``$ref`` to a component schema, by model or by name."""
    return {"$ref": REF.format(model=name if isinstance(name, str) else name.__name__)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _q(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    param = {"name": name, "in": "query", "required": False, "schema": schema}
    return {**param, "description": description} if description else param


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


_LIMIT = _q("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "Default 50.")
_CURSOR = _q("cursor", {"type": "string"}, "`next_cursor` of the previous page.")
_BOOL = {"type": "boolean"}
_STR = {"type": "string"}


def op(
    summary: str,
    ok: Mapping[int, tuple[dict[str, Any], str] | dict[str, Any]],
    fails: tuple[int, ...] = (),
    *,
    auth: bool = True,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    body_required: bool = True,
    description: str | None = None,
) -> dict[str, Any]:
    """One operation: ``ok`` maps each success status to (JSON schema, description), or to
    a whole response object when the answer is not JSON; ``fails`` are the error statuses
    (401 and 403 are added when it needs a token)."""
    codes = sorted({*fails, 401, 403} if auth else set(fails))
    out: dict[str, Any] = {"summary": summary}
    if description:
        out["description"] = description
    if auth:
        out["security"] = [{"bearer": []}]
    if params:
        out["parameters"] = params
    if body is not None:
        out["requestBody"] = {"required": body_required, "content": body}
    responses = {
        str(code): _json(*answer) if isinstance(answer, tuple) else answer
        for code, answer in ok.items()
    }
    responses.update({str(c): _json(ref("Error"), _ERROR_TEXT[c]) for c in codes})
    out["responses"] = responses
    return out


def filing_paths() -> dict[str, Any]:
    """Filings: submit (JSON or CloudEvents), list, read, history, retry, cancel."""
    fid = [_path("id")]
    view = (ref(models.FilingView), "The filing after")
    submitted = {"anyOf": [ref(schemas.Submitted), ref(schemas.SubmittedMany)]}
    cloudevent = {
        "type": "object",
        "description": "A CloudEvent 1.0 (structured mode); binary mode sends ce-* headers. "
        "`type` picks the source's normalizer, `id`+`source` are the idempotency key.",
        "required": ["specversion", "id", "source", "type"],
    }
    key = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "maxLength": 255},
    }
    return {
        "/v1/filings": {
            "post": op(
                "Submit a filing event",
                {
                    202: (submitted, "Accepted and stored"),
                    200: (submitted, "Duplicate of an earlier submission"),
                },
                fails=(400, 413, 422),
                params=[key],
                body={
                    "application/json": {"schema": ref(models.FilingEvent)},
                    "application/cloudevents+json": {"schema": cloudevent},
                },
                description="A plain event answers `Submitted`; a CloudEvent whose source "
                "turns it into several filings answers `SubmittedMany`.",
            ),
            "get": op(
                "List filings (newest first, cursor pagination)",
                {200: (ref(models.Page), "A page of filings")},
                fails=(422,),
                params=[
                    _q("status", ref(models.FilingStatus)),
                    _q("state", ref(models.DeliveryState), "Any delivery in this state."),
                    _q("filing_type", ref(models.FilingType)),
                    _q("environment", ref(models.Environment)),
                    _q("reference", _STR),
                    _q("adapter", _STR),
                    _q("since", {"type": "string", "format": "date-time"}),
                    _q("until", {"type": "string", "format": "date-time"}),
                    _q("at_risk", _BOOL, "Only filings at risk of missing `due_by`."),
                    _q("ack_overdue", _BOOL, "Only filings whose ack is overdue."),
                    _q("ack_conflict", _BOOL, "Only filings with conflicting acks (a person)."),
                    _LIMIT,
                    _CURSOR,
                ],
            ),
        },
        "/v1/filings/batch": {
            "post": op(
                "Submit up to 1,000 events in one transaction",
                {200: (ref(schemas.BatchResult), "Per-item results, in order")},
                fails=(400, 413, 422),
                body={
                    "application/json": {
                        "schema": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 1000,
                            "description": "Filing events (see FilingEvent); each item is "
                            "validated on its own and an invalid one is answered in `results`.",
                            "items": {"type": "object", "title": "BatchEventItem"},
                        }
                    },
                    "application/cloudevents-batch+json": {
                        "schema": {
                            "type": "array",
                            "description": "CloudEvents; an item that is not a valid one is "
                            "answered in `results`, not refused.",
                            "items": {"type": "object", "title": "BatchCloudEventItem"},
                        }
                    },
                },
            )
        },
        "/v1/rejected-events": {
            "get": op(
                "Inbound events (queue messages, files) that could not become filings",
                {200: (ref(schemas.RejectedPage), "A page of rejected events")},
                fails=(422,),
                params=[_q("source", _STR), _LIMIT, _CURSOR],
            )
        },
        "/v1/filings/{id}": {
            "get": op(
                "A filing with its deliveries",
                {200: (ref(models.FilingView), "The filing")},
                fails=(404,),
                params=fid,
            )
        },
        "/v1/filings/{id}/history": {
            "get": op(
                "A filing's audit rows",
                {200: (ref(schemas.History), "Audit rows, oldest first")},
                fails=(404,),
                params=fid,
            )
        },
        "/v1/filings/{id}/retry": {
            "post": op(
                "Dead or blocked deliveries back to pending", {200: view}, (404, 409), params=fid
            )
        },
        "/v1/filings/{id}/cancel": {
            "post": op(
                "Cancel deliveries not yet sent (409 delivery_in_flight while a send runs)",
                {200: view},
                (404, 409),
                params=fid,
            )
        },
    }


def ack_paths() -> dict[str, Any]:
    """Acknowledgements, ack deadlines and status callbacks."""
    fid = [_path("id")]
    reason = {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"reason": {"type": "string", "maxLength": 1000}},
            }
        }
    }
    return {
        "/v1/acks": {
            "post": op(
                "Store acks: JSON, or a raw TA1/997/999 (application/edi-x12)",
                {200: (ref(schemas.AckReceipt), "The acks stored and what each did")},
                fails=(400, 413, 422),
                body={
                    "application/json": {
                        "schema": {
                            "anyOf": [
                                ref(models.Ack),
                                {"type": "array", "items": ref(models.Ack), "minItems": 1},
                            ]
                        }
                    },
                    "application/edi-x12": {"schema": _STR},
                },
            ),
            "get": op(
                "List acks; matched=false for those that matched nothing",
                {200: (ref(schemas.AckList), "Acks, newest first")},
                fails=(422,),
                params=[_q("matched", _BOOL), _q("filing_id", _STR), _LIMIT],
            ),
        },
        "/v1/filings/{id}/acks": {
            "get": op(
                "A filing's acks",
                {200: (ref(schemas.FilingAcks), "Acks, newest first")},
                fails=(404, 422),
                params=[*fid, _LIMIT],
            )
        },
        "/v1/filings/{id}/resend": {
            "post": op(
                "Resend a sent filing (operator; a reason is required)",
                {200: (ref(schemas.Resent), "The deliveries resent, and the filing")},
                fails=(400, 404, 409, 413, 422),
                params=fid,
                body=reason,
                body_required=False,
            )
        },
        "/v1/filings/{id}/close-ack": {
            "post": op(
                "Stop waiting for an ack, or resolve an ack conflict (operator)",
                {200: (ref(schemas.AckClosed), "The deliveries closed, and the filing")},
                fails=(400, 404, 409, 413, 422),
                params=fid,
                body=reason,
                body_required=False,
            )
        },
        "/v1/callbacks": {
            "get": op(
                "Status callbacks; state=dead lists dead letters",
                {200: (ref(schemas.CallbackList), "Callbacks, newest first")},
                fails=(422,),
                params=[_q("filing_id", _STR), _q("state", _STR), _LIMIT],
            )
        },
    }


def operation_paths() -> dict[str, Any]:
    """Adapters, outages, health, monitoring, bulk actions, the dashboard and the docs."""

    def bulk(verb: str, what: str) -> dict[str, Any]:
        return {
            "post": op(
                f"{verb} deliveries matching a filter (dry_run previews)",
                {200: (ref(ops.BulkResponse), "What changed (or would)")},
                fails=(400, 413, 422),
                body={"application/json": {"schema": ref(ops.BulkRequest)}},
                description=what,
            )
        }

    live = {200: (ref(schemas.Liveness), "Alive")}
    text = {"description": "Metrics", "content": {"text/plain": {"schema": _STR}}}
    static = {
        "description": "The file",
        "content": {"text/javascript": {"schema": _STR}, "text/css": {"schema": _STR}},
    }
    return {
        "/v1/adapters": {
            "get": op(
                "Configured adapters, health and delivery counts",
                {200: (ref(schemas.AdapterList), "Adapters")},
            )
        },
        "/v1/outages": {
            "post": op(
                "Announce an outage of an adapter or an environment",
                {201: (ref(outages.Outage), "The outage, with its id")},
                fails=(400, 413, 422),
                body={"application/json": {"schema": ref(outages.OutageRequest)}},
            ),
            "get": op(
                "Announced outages not yet over; ?upcoming=N adds calendar windows",
                {200: (ref(schemas.OutageList), "Outages")},
                fails=(422,),
                params=[_q("upcoming", {"type": "integer", "minimum": 1, "maximum": 100})],
            ),
        },
        "/v1/outages/{id}": {
            "delete": op(
                "Remove an announced outage (sending resumes at once)",
                {200: (ref(outages.Outage), "The removed outage")},
                fails=(404, 409),
                params=[_path("id")],
            )
        },
        "/healthz": {"get": op("Process liveness (checks nothing external)", live, auth=False)},
        "/livez": {"get": op("Process liveness (checks nothing external)", live, auth=False)},
        "/readyz": {
            "get": op(
                "Readiness: store, migrations, dispatcher, shutdown",
                {
                    200: (ref(schemas.Readiness), "Ready (or degraded)"),
                    503: (ref(schemas.Readiness), "Not ready"),
                },
                auth=False,
                description="200 `ready` or `degraded` (an adapter in an outage: filings "
                "are still accepted and queued); 503 `not_ready` naming the failing checks.",
            )
        },
        "/openapi.json": {
            "get": op("This document", {200: ({"type": "object"}, "OpenAPI 3.1")}, auth=False)
        },
        "/metrics": {"get": op("Prometheus metrics (text exposition)", {200: text})},
        "/v1/overview": {
            "get": op(
                "Queue, adapters, calendars and outages at a glance",
                {200: (ref(schemas.Overview), "The overview")},
                fails=(422,),
            )
        },
        "/v1/deliveries/retry": bulk(
            "Retry", "Dead or blocked deliveries back to pending; `reason` is audited."
        ),
        "/v1/deliveries/cancel": bulk(
            "Cancel", "Cancel undelivered deliveries; `reason` is audited."
        ),
        "/docs": {"get": op("This API, as a page", {200: _html("Docs")}, auth=False)},
        "/": {"get": op("The dashboard", {200: _html("Dashboard")}, auth=False)},
        "/ui/": {"get": op("The dashboard", {200: _html("Dashboard")}, auth=False)},
        "/ui/panels": {
            "get": op("The dashboard's figures (HTML fragment)", {200: _html("Panels")}, (422,))
        },
        "/ui/filings/{id}": {
            "get": op(
                "A filing's page", {200: _html("Filing page")}, auth=False, params=[_path("id")]
            )
        },
        "/ui/filings/{id}/panel": {
            "get": op(
                "A filing's deliveries and audit history (HTML fragment)",
                {200: _html("Panel")},
                fails=(404,),
                params=[_path("id")],
            )
        },
        "/ui/static/{name}": {
            "get": op(
                "The dashboard's script and style sheet",
                {200: static},
                fails=(404,),
                auth=False,
                params=[_path("name")],
            )
        },
    }
