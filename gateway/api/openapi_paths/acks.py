"""Acknowledgements' operations: acks in, ack deadlines and status callbacks."""

from __future__ import annotations

from typing import Any

from gateway import models
from gateway.api import schemas
from gateway.api.openapi_paths.parts import BOOL, LIMIT, STR, op, path_param, query, ref


def ack_paths() -> dict[str, Any]:
    """Acknowledgements, ack deadlines and status callbacks."""
    fid = [path_param("id")]
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
                    "application/edi-x12": {"schema": STR},
                },
            ),
            "get": op(
                "List acks; matched=false for those that matched nothing",
                {200: (ref(schemas.AckList), "Acks, newest first")},
                fails=(422,),
                params=[query("matched", BOOL), query("filing_id", STR), LIMIT],
            ),
        },
        "/v1/filings/{id}/acks": {
            "get": op(
                "A filing's acks",
                {200: (ref(schemas.FilingAcks), "Acks, newest first")},
                fails=(404, 422),
                params=[*fid, LIMIT],
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
                params=[query("filing_id", STR), query("state", STR), LIMIT],
            )
        },
    }
