"""The records' operations (issue 20): search, show, restore."""

from __future__ import annotations

from typing import Any

from gateway.api.openapi_paths.parts import (
    CURSOR,
    LIMIT,
    STR,
    html_answer,
    op,
    path_param,
    query,
)

_ITEM = {
    "type": "object",
    "properties": {
        "id": STR,
        "filing_type": STR,
        "environment": STR,
        "reference": STR,
        "filer_code": STR,
        "state": STR,
        "received_at": {"type": "string", "format": "date-time"},
        "where": {"enum": ["live", "archive"]},
        "segment": {"type": ["string", "null"]},
    },
    "required": ["id", "filing_type", "environment", "reference", "where"],
}
_PAGE = {
    "type": "object",
    "properties": {
        "items": {"type": "array", "items": _ITEM},
        "next_cursor": {"type": ["string", "null"]},
    },
    "required": ["items", "next_cursor"],
}
_RECORD = {
    "type": "object",
    "properties": {
        "id": STR,
        "where": {"enum": ["live", "archive"]},
        "segment": {"type": ["string", "null"]},
        "record": {
            "type": "object",
            "description": "filing, deliveries, acks, callbacks, x12_allocations, audit: "
            "the store's rows as they were",
        },
    },
    "required": ["id", "where", "record"],
}
_SEARCH = (
    ("reference", "Reference (any spelling: case, spaces and hyphens do not count)."),
    ("entry_number", "Entry number, where the payload has one."),
    ("bill_of_lading", "Bill of lading (master or house), where the payload has one."),
    ("isf_transaction_number", "ISF transaction number."),
    ("ack_code", "A code of an ack the filing received."),
    ("filer_code", ""),
    ("filing_type", ""),
    ("environment", "cert or production."),
    ("state", "The filing's status."),
)
_TIME = {"type": "string", "format": "date-time"}


def record_paths() -> dict[str, Any]:
    """``/v1/records``: live + archive."""
    params = [query(name, STR, text) for name, text in _SEARCH]
    params += [query("received_from", _TIME, "Received at or after (ISO 8601 with offset).")]
    params += [query("received_to", _TIME, "Received before."), LIMIT, CURSOR]
    reason = {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 1000}},
                "required": ["reason"],
            }
        }
    }
    restored = {
        "type": "object",
        "properties": {"id": STR, "restored_from": STR, "reason": STR},
        "required": ["id", "restored_from", "reason"],
    }
    return {
        "/v1/records": {
            "get": op(
                "Search records, live and archived merged newest first (one cursor; a token "
                "limited to filers finds its own only)",
                {200: (_PAGE, "A page; a page may be short: follow next_cursor until null")},
                fails=(409, 422),
                params=params,
            )
        },
        "/v1/records/{id}": {
            "get": op(
                "A filing's whole record, live or archived (a scoped token: its filers' only)",
                {200: (_RECORD, "Every row of the filing, the payload as stored and sent")},
                fails=(404, 409),
                params=[path_param("id")],
            )
        },
        "/v1/records/{id}/restore": {
            "post": op(
                "Bring an archived filing back into the live store (audited, with a reason)",
                {200: (restored, "Restored")},
                fails=(400, 404, 409, 413, 422),
                params=[path_param("id")],
                body=reason,
            )
        },
        # the dashboard's records pages (shells public; fragments need read, narrowed)
        "/ui/records": {
            "get": op("The records search page", {200: html_answer("Page")}, auth=False)
        },
        "/ui/records/panel": {
            "get": op(
                "Records found (HTML fragment; the search's parameters, a date as YYYY-MM-DD)",
                {200: html_answer("Results")},
                fails=(409, 422),
                params=[
                    query(p["name"], STR, "A date (YYYY-MM-DD) or an ISO 8601 time with offset.")
                    if p["name"].startswith("received_")
                    else p
                    for p in params
                ],
            )
        },
        "/ui/records/{id}": {
            "get": op(
                "A record's page",
                {200: html_answer("Page")},
                fails=(404,),
                auth=False,
                params=[path_param("id")],
            )
        },
        "/ui/records/{id}/panel": {
            "get": op(
                "A record's history and payload (HTML fragment)",
                {200: html_answer("Panel")},
                fails=(404, 409),
                params=[path_param("id")],
            )
        },
    }
