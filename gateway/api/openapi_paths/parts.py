"""The building blocks of ``/openapi.json``'s operations: ``op`` (one operation with its
answers and error statuses), ``$ref``s, query and path parameters."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from pydantic import BaseModel

REF = "#/components/schemas/{model}"

ERROR_TEXT = {
    400: "Malformed JSON",
    401: "Missing or invalid token",
    403: "Token lacks the scope, or the filer code (a token limited to filer codes)",
    404: "Not found",
    409: "The current state forbids this action",
    413: "Body too large",
    422: "Invalid, unroutable, or idempotency key reused",
    429: "Over an intake quota (`Retry-After`; `details` name the limit)",
    503: "Not ready",
}


def ref(name: str | type[BaseModel] | type[Enum]) -> dict[str, str]:
    """A ``$ref`` to a component schema, by model or by name."""
    return {"$ref": REF.format(model=name if isinstance(name, str) else name.__name__)}


def json_answer(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def html_answer(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    param = {"name": name, "in": "query", "required": False, "schema": schema}
    return {**param, "description": description} if description else param


def path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


LIMIT = query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "Default 50.")
CURSOR = query("cursor", {"type": "string"}, "`next_cursor` of the previous page.")
BOOL = {"type": "boolean"}
STR = {"type": "string"}


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
        str(code): json_answer(*answer) if isinstance(answer, tuple) else answer
        for code, answer in ok.items()
    }
    responses.update({str(c): json_answer(ref("Error"), ERROR_TEXT[c]) for c in codes})
    out["responses"] = responses
    return out
