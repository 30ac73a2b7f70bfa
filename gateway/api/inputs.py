"""Where request input becomes values: headers, path and query text, integers, flags.

aiohttp hands header values and query strings over as ``str`` even when the bytes were
not UTF-8 (lone surrogates stand for the bad bytes), and Python's ``str.isdigit`` accepts
``²``, which ``int`` refuses. Every value a handler reads goes through here first, so a
bad byte, a control character or a superscript digit is a 4xx naming the field (400 in a
header, 422 in a query value, 404 in a path parameter), never a 500 from deep in the store,
a hash or a log line.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from aiohttp import web

from gateway import errors

#: C0 controls and DEL: never part of a header value, a name, a key or a query value
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: ASCII digits only (``str.isdigit`` also takes ``²``, ``٣`` …)
_DIGITS = re.compile(r"[0-9]{1,9}")
#: headers read as text by the gateway; the rest pass through untouched
READ_HEADERS = ("Authorization", "Idempotency-Key", "X-Request-ID", "Content-Type", "Origin")
#: pages that answer 200 for any id (saying "no such filing" inline); they check it themselves
PAGE_SHELLS = frozenset({"/ui/filings/{id}"})
#: the longest query value taken (ids, cursors, references are far shorter)
MAX_QUERY_CHARS = 1024


def problem(text: str) -> str | None:
    """Why ``text`` is not clean text (None when it is): not UTF-8, or a control character."""
    if text.isascii() and text.isprintable():  # the common case: no control, no surrogate
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "not UTF-8 text"
    if CONTROL.search(text):
        return "holds a control character"
    return None


def _refuse(loc: str, msg: str) -> errors.GatewayError:
    """400 for a header; 422 for a query value (as for one out of range); 404 for a path
    parameter (no resource has such a name)."""
    cls: type[errors.GatewayError] = errors.MalformedInput
    if loc.startswith("query"):
        cls = errors.InvalidInput
    elif loc.startswith("path."):
        cls = errors.NotFound
    return cls(f"{loc}: {msg}", details=[{"loc": loc, "msg": msg}])


def check_request(request: web.Request) -> None:
    """Every header the gateway reads, every path parameter and query key/value is text."""
    for name in READ_HEADERS:
        for value in request.headers.getall(name, ()):
            why = problem(value)
            if why is not None:
                raise _refuse(f"header.{name}", why)
    resource = request.match_info.route.resource
    shell = resource is not None and resource.canonical in PAGE_SHELLS
    for name, value in () if shell else request.match_info.items():
        why = problem(value)
        if why is not None:
            raise _refuse(f"path.{name}", why)
    for key, value in request.query.items():
        why = problem(key)
        if why is not None:
            raise _refuse("query", f"a parameter name {why}")
        why = problem(value)
        if why is None and len(value) > MAX_QUERY_CHARS:
            why = f"longer than {MAX_QUERY_CHARS} characters"
        if why is not None:
            raise _refuse(f"query.{key}", why)


def only_params(request: web.Request, allowed: Collection[str]) -> None:
    """422 naming every query parameter the route does not take (a typo never passes)."""
    unknown = sorted(set(request.query) - set(allowed))
    if unknown:
        raise errors.InvalidInput(
            f"unknown query parameter {unknown[0]!r}",
            details=[{"loc": f"query.{u}", "msg": "unknown"} for u in unknown],
        )


def query_int(request: web.Request, name: str, *, default: int, low: int, high: int) -> int:
    """An integer query parameter of ASCII digits within ``low..high`` (400 otherwise)."""
    text = request.query.get(name)
    if text is None:
        return default
    if not _DIGITS.fullmatch(text):
        raise _refuse(f"query.{name}", f"not an integer of ASCII digits ({low}..{high})")
    if not low <= int(text) <= high:
        raise errors.InvalidInput(
            f"{name} must be an integer from {low} to {high}",
            details=[{"loc": f"query.{name}", "msg": f"{low}..{high}"}],
        )
    return int(text)


def query_optional_int(request: web.Request, name: str, *, low: int, high: int) -> int | None:
    """Like ``query_int`` but ``None`` when the parameter is absent."""
    if name not in request.query:
        return None
    return query_int(request, name, default=low, low=low, high=high)


def request_id(value: str | None) -> tuple[str | None, str | None]:
    """The caller's ``X-Request-ID`` if usable, and why not otherwise (echoed in a header)."""
    if not value:
        return None, None
    if not value.isascii() or not value.isprintable():
        return None, "must be printable ASCII"
    return value[:128], None
