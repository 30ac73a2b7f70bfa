"""Operators' operations: adapters, outages, health, monitoring, bulk actions, the
dashboard and the docs."""

from __future__ import annotations

from typing import Any

from gateway.api import ops, schemas
from gateway.api.openapi_paths.parts import STR, html_answer, op, path_param, query, ref
from gateway.rules import outages

FILER = query("filer", STR, "The dashboard's lists for this filer code only.")


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
    text = {"description": "Metrics", "content": {"text/plain": {"schema": STR}}}
    static = {
        "description": "The file",
        "content": {"text/javascript": {"schema": STR}, "text/css": {"schema": STR}},
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
                params=[query("upcoming", {"type": "integer", "minimum": 1, "maximum": 100})],
            ),
        },
        "/v1/outages/{id}": {
            "delete": op(
                "Remove an announced outage (sending resumes at once)",
                {200: (ref(outages.Outage), "The removed outage")},
                fails=(404, 409),
                params=[path_param("id")],
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
                params=[query("filer", STR, "The queue by filer shows this filer code only.")],
            )
        },
        "/v1/deliveries/retry": bulk(
            "Retry", "Dead or blocked deliveries back to pending; `reason` is audited."
        ),
        "/v1/deliveries/cancel": bulk(
            "Cancel", "Cancel undelivered deliveries; `reason` is audited."
        ),
        "/docs": {"get": op("This API, as a page", {200: html_answer("Docs")}, auth=False)},
        "/": {"get": op("The dashboard", {200: html_answer("Dashboard")}, auth=False)},
        "/ui/": {"get": op("The dashboard", {200: html_answer("Dashboard")}, auth=False)},
        "/ui/panels": {
            "get": op(
                "The dashboard's figures (HTML fragment)",
                {200: html_answer("Panels")},
                (422,),
                params=[FILER],
            )
        },
        "/ui/events": {
            "get": op(
                "The dashboard's figures as server-sent events: now, then on each change",
                {
                    200: {
                        "description": "Events `panels` (HTML)",
                        "content": {"text/event-stream": {"schema": STR}},
                    }
                },
                (422,),
                params=[FILER],
            )
        },
        "/ui/filings/{id}": {
            "get": op(
                "A filing's page",
                {200: html_answer("Filing page")},
                auth=False,
                params=[path_param("id")],
            )
        },
        "/ui/filings/{id}/panel": {
            "get": op(
                "A filing's deliveries and audit history (HTML fragment)",
                {200: html_answer("Panel")},
                fails=(404,),
                params=[path_param("id")],
            )
        },
        "/ui/static/{name}": {
            "get": op(
                "The dashboard's script and style sheet",
                {200: static},
                fails=(404,),
                auth=False,
                params=[path_param("name")],
            )
        },
    }
