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

#: objects and arrays nested deeper than this are refused (no document needs more; Python's
#: parser and encoder recurse, so depth is also a resource)
MAX_DEPTH = 64
# a \\uD800-\\uDFFF escape anywhere in the raw text: only then is the costly check needed
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def loads(raw: bytes, *, what: str = "the request body", max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of ``raw``; ``MalformedInput`` for invalid JSON, lone surrogates or
    objects and arrays nested deeper than ``max_depth``."""
    too_deep = errors.MalformedInput(
        f"{what} nests objects and arrays deeper than {max_depth} levels",
        details=[{"loc": "body", "msg": f"deeper than {max_depth} levels"}],
    )
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise errors.MalformedInput(f"{what} is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # thousands deep: the parser gives up before we can count
        raise too_deep from exc
    # fewer brackets than the limit cannot nest past it: most single documents stop here
    if raw.count(b"[") + raw.count(b"{") > max_depth and nesting(value, max_depth) > max_depth:
        raise too_deep
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise errors.MalformedInput(
                f"{what} holds an unpaired UTF-16 surrogate (\\ud800-\\udfff), which is not text"
            ) from exc
    return value


def nesting(value: Any, limit: int) -> int:
    """How deep objects and arrays nest in ``value``, counted up to ``limit + 1``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > limit:
            break
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return deepest if isinstance(value, dict | list) else 0


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
