"""Traces across services, the part every call site sees (no OpenTelemetry import here).

Tracing is off unless ``[tracing] otlp_endpoint`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` is
set: then the server builds no tracer, the OpenTelemetry SDK is never imported, the API's
server-span middleware is not installed, and each call site skips on ``tracer is None``
(intake pays one context-variable read per filing, ``stamp``).

On, a request's ``traceparent``/``tracestate`` make its server span a child of the
client's span, and that span's W3C context is kept with each filing it accepts, in the
filing's metadata under ``TRACE_KEY`` (a field every store already round-trips), so a
delivery attempt, an ack or a callback, in any process and at any later time, is its
child. The dispatcher strips the key before encoding (``detach``): it never reaches a
receiver's body; the attempt's own context goes out in the transport's headers instead.
``spans`` holds the SDK side.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from gateway import models

#: where a filing keeps the W3C context of the span that accepted it (and where an
#: ``OutboundMessage`` carries the context of its send span, for the adapter's headers)
TRACE_KEY = "_trace"
#: a valid W3C traceparent (version 00 layout; the all-zero ids are invalid)
TRACEPARENT = re.compile(r"^[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")
#: the W3C context of the request being accepted now (set inside the API's server span)
ACCEPTING: ContextVar[dict[str, str] | None] = ContextVar("edigw_accepting", default=None)


def stamp(filing: models.Filing) -> models.Filing:
    """The filing with the accepting span's context kept in its metadata (when tracing)."""
    carrier = ACCEPTING.get()
    if carrier is None:
        return filing
    return filing.model_copy(update={"metadata": {**filing.metadata, TRACE_KEY: carrier}})


def carrier_of(metadata: Mapping[str, Any]) -> dict[str, str] | None:
    """The W3C context kept under ``TRACE_KEY``, if it is one."""
    value = metadata.get(TRACE_KEY)
    if not isinstance(value, Mapping):
        return None
    parent = value.get("traceparent")
    if not isinstance(parent, str) or not TRACEPARENT.match(parent):
        return None
    carrier = {"traceparent": parent}
    state = value.get("tracestate")
    if isinstance(state, str) and state and len(state) <= 512:
        carrier["tracestate"] = state
    return carrier


def detach(filing: models.Filing) -> tuple[models.Filing, dict[str, str] | None]:
    """The filing without its kept trace context (what is encoded and sent), and that context."""
    if TRACE_KEY not in filing.metadata:
        return filing, None
    carrier = carrier_of(filing.metadata)
    rest = {k: v for k, v in filing.metadata.items() if k != TRACE_KEY}
    return filing.model_copy(update={"metadata": rest}), carrier
