"""JSON at the edges: strict parsing of what comes in, fast rendering of what goes out.

Parsing: strict about what Python's json module lets through.

``json.loads`` accepts ``"\\ud800"``, an unpaired UTF-16 surrogate, and returns a ``str``
that cannot be encoded as UTF-8 — so it would fail later, deep in the store or a log line.
Such a document is refused here, at the edge, as malformed input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import orjson

from gateway import errors

# a \\uD800-\\uDFFF escape anywhere in the raw text: only then is the costly check needed
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def loads(raw: bytes, *, what: str = "the request body") -> Any:
    """The JSON value of ``raw``; ``MalformedInput`` for invalid JSON or lone surrogates."""
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise errors.MalformedInput(f"{what} is not valid JSON: {exc}") from exc
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise errors.MalformedInput(
                f"{what} holds an unpaired UTF-16 surrogate (\\ud800-\\udfff), "
                "which is not text"
            ) from exc
    return value


# --- rendering -------------------------------------------------------------------------

_ORJSON_OPTS = orjson.OPT_PASSTHROUGH_DATETIME


def dumps(value: Any, *, default: Callable[[Any], Any] | None = None) -> str:
    """Compact JSON text for responses and log lines (not for hashing: see
    ``audit.canonical``). orjson renders it several times faster than the json module;
    what orjson refuses (an integer past 64 bits, a lone surrogate) falls back to json.
    Datetimes go through ``default`` so every backend spells them one way."""
    try:
        return orjson.dumps(value, default=default, option=_ORJSON_OPTS).decode()
    except TypeError:
        return json.dumps(value, default=default, separators=(",", ":"))


def log_dumps(value: Any, **kw: Any) -> str:
    """``dumps`` with structlog's JSONRenderer signature (it passes ``default=``)."""
    return dumps(value, default=kw.get("default"))
