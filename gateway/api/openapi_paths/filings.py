"""Filings' operations: submit (JSON or CloudEvents), list, read, history, retry, cancel."""

from __future__ import annotations

from typing import Any

from gateway import models
from gateway.api import schemas
from gateway.api.openapi_paths.parts import BOOL, CURSOR, LIMIT, STR, op, path_param, query, ref


def filing_paths() -> dict[str, Any]:
    """Filings: submit (JSON or CloudEvents), list, read, history, retry, cancel."""
    fid = [path_param("id")]
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
                fails=(400, 409, 413, 422, 429),
                params=[key],
                body={
                    "application/json": {"schema": ref(models.FilingEvent)},
                    "application/cloudevents+json": {"schema": cloudevent},
                },
                description="A plain event answers `Submitted`; a CloudEvent whose source "
                "turns it into several filings answers `SubmittedMany`. 409 "
                "`refused_in_window`: a calendar window refuses this filing type now.",
            ),
            "get": op(
                "List filings (newest first, cursor pagination)",
                {200: (ref(models.Page), "A page of filings")},
                fails=(422,),
                params=[
                    query("status", ref(models.FilingStatus)),
                    query("state", ref(models.DeliveryState), "Any delivery in this state."),
                    query("filing_type", ref(models.FilingType)),
                    query("environment", ref(models.Environment)),
                    query("filer_code", STR),
                    query("reference", STR),
                    query("adapter", STR),
                    query("since", {"type": "string", "format": "date-time"}),
                    query("until", {"type": "string", "format": "date-time"}),
                    query("at_risk", BOOL, "Only filings at risk of missing `due_by`."),
                    query("ack_overdue", BOOL, "Only filings whose ack is overdue."),
                    query("ack_conflict", BOOL, "Only filings with conflicting acks (a person)."),
                    LIMIT,
                    CURSOR,
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
                params=[query("source", STR), LIMIT, CURSOR],
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
