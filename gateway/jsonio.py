"""Parsing JSON from the outside world: strict about what Python's json module lets through.

``json.loads`` accepts ``"\\ud800"``, an unpaired UTF-16 surrogate, and returns a ``str``
that cannot be encoded as UTF-8 — so it would fail later, deep in the store or a log line.
Such a document is refused here, at the edge, as malformed input.
"""

from __future__ import annotations

import json
import re
from typing import Any

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
