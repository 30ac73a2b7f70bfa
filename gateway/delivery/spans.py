"""The OpenTelemetry SDK side of ``tracing``: a tracer provider exporting OTLP/HTTP, and the
spans of a filing's trace, named and attributed after the semantic conventions.

* the API's server span (``server``, SpanKind.SERVER, ``{method} {http.route}``), a
  child of the client's ``traceparent``;
* one span per delivery attempt (``deliver``, ``deliver {adapter}``), a child of the
  accept's kept context, holding the transport's own span: HTTP client (``POST``,
  ``url.full``, ``http.response.status_code``…) or messaging producer
  (``publish {exchange}``, ``messaging.system``…) as the adapter describes it in its
  optional ``trace_span(message)``; that span's context travels in the message's
  metadata (``TRACE_KEY``) to the adapter, which puts it in its request or message headers;
* a span per matched ack (``ack``) and per callback POST (``callback``, HTTP client),
  children of the accept's context, linked to whatever span was current.

Spans are batched and exported by the SDK's own thread; nothing here blocks the loop.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway import config, models
from gateway.delivery import tracing

KINDS = {
    "client": trace.SpanKind.CLIENT,
    "producer": trace.SpanKind.PRODUCER,
    "internal": trace.SpanKind.INTERNAL,
}
#: how the http adapter and the callback sender name a refused status in their errors
_HTTP_STATUS = re.compile(r"^HTTP (\d{3})\b")


class Sender(Protocol):
    async def send(self, message: models.OutboundMessage) -> models.Receipt: ...


class Tracer:
    """One gateway's tracer provider (never the process-global one) and its spans."""

    def __init__(self, *, url: str, service_name: str, timeout_s: float) -> None:
        self.url = url
        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        self.provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=url, timeout=timeout_s))
        )
        self.tracer = self.provider.get_tracer("edi-gateway")
        self.propagator = TraceContextTextMapPropagator()

    # --- context in and out -----------------------------------------------------------

    def _parent(self, carrier: Mapping[str, str] | None) -> otel_context.Context | None:
        return self.propagator.extract(dict(carrier)) if carrier else None

    def carrier(self, span: trace.Span) -> dict[str, str]:
        """The W3C headers naming ``span`` as the parent."""
        out: dict[str, str] = {}
        self.propagator.inject(out, context=trace.set_span_in_context(span))
        return out

    # --- the spans --------------------------------------------------------------------

    @contextlib.contextmanager
    def server(
        self, name: str, headers: Mapping[str, str], attributes: Mapping[str, Any]
    ) -> Iterator[trace.Span]:
        """An HTTP server span, child of the request's ``traceparent``; while it is open,
        a filing accepted is stamped with its context."""
        carrier = {k: v for k in ("traceparent", "tracestate") if (v := headers.get(k))}
        with self.tracer.start_as_current_span(
            name,
            context=self._parent(carrier),
            kind=trace.SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            token = tracing.ACCEPTING.set(self.carrier(span))
            try:
                yield span
            finally:
                tracing.ACCEPTING.reset(token)

    async def deliver(
        self,
        adapter: Sender,
        message: models.OutboundMessage,
        carrier: Mapping[str, str] | None,
    ) -> models.Receipt:
        """``adapter.send(message)`` inside a delivery-attempt span and the transport's span."""
        attributes: dict[str, Any] = {
            "edigw.filing.id": message.filing_id,
            "edigw.delivery.id": message.delivery_id,
            "edigw.adapter": message.adapter,
            "edigw.attempt": message.attempt,
            "edigw.filing_type": message.filing_type.value,
        }
        with self.tracer.start_as_current_span(
            f"deliver {message.adapter}", context=self._parent(carrier), attributes=attributes
        ) as attempt:
            describe = getattr(adapter, "trace_span", None)
            name, kind, span_attributes = (
                describe(message) if describe is not None else ("send", "internal", {})
            )
            with self.tracer.start_as_current_span(
                name, kind=KINDS.get(kind, trace.SpanKind.INTERNAL), attributes=span_attributes
            ) as send:
                traced = message.model_copy(
                    update={"metadata": {**message.metadata, tracing.TRACE_KEY: self.carrier(send)}}
                )
                try:
                    receipt = await adapter.send(traced)
                except Exception as exc:
                    _failed(send, exc)
                    _failed(attempt, exc)
                    raise
                if kind == "client" and receipt.status and receipt.status.isdigit():
                    send.set_attribute("http.response.status_code", int(receipt.status))
                attempt.set_attribute("edigw.outcome", "delivered")
                return receipt

    def ack(
        self, carrier: Mapping[str, str] | None, record: models.AckRecord, ack: models.Ack
    ) -> None:
        """A span for an ack applied to a filing, child of its accept, linked to the
        span current where the ack came in (the ``POST /v1/acks`` request, a poll)."""
        current = trace.get_current_span().get_span_context()
        links = [trace.Link(current)] if current.is_valid else []
        attributes: dict[str, Any] = {
            "edigw.ack.id": record.id,
            "edigw.ack.effect": record.effect,
            "edigw.ack.kind": str(ack.kind),
            "edigw.ack.source": ack.source or "",
        }
        if record.filing_id:
            attributes["edigw.filing.id"] = record.filing_id
        if record.delivery_id:
            attributes["edigw.delivery.id"] = record.delivery_id
        span = self.tracer.start_span(
            "ack", context=self._parent(carrier), attributes=attributes, links=links
        )
        span.end()

    @contextlib.contextmanager
    def callback(
        self, carrier: Mapping[str, str] | None, url: str, headers: dict[str, str]
    ) -> Iterator[trace.Span]:
        """An HTTP client span for one callback POST; its context goes into ``headers``."""
        host, _, port = (url.split("://", 1)[-1].split("/", 1)[0]).rpartition(":")
        attributes: dict[str, Any] = {"http.request.method": "POST", "url.full": url}
        if host and port.isdigit():
            attributes |= {"server.address": host.strip("[]"), "server.port": int(port)}
        with self.tracer.start_as_current_span(
            "POST",
            context=self._parent(carrier),
            kind=trace.SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            headers.update(self.carrier(span))
            yield span

    def server_status(self, span: trace.Span, status: int) -> None:
        """Record a server span's response status (``_server_status``)."""
        _server_status(span, status)

    def flush(self, timeout_ms: int = 30_000) -> bool:
        """Export every ended span now (blocks: call it from a thread, not the loop)."""
        return self.provider.force_flush(timeout_ms)

    def shutdown(self) -> None:
        """Export what is left and stop the exporter's thread (blocks, like ``flush``)."""
        self.provider.shutdown()


def build(section: config.TracingSection, environ: Mapping[str, str]) -> Tracer | None:
    """The tracer for a config, or None (off) when no OTLP endpoint is configured."""
    url = config.traces_url(section, dict(environ))
    if url is None:
        return None
    return Tracer(url=url, service_name=section.service_name, timeout_s=section.export_timeout)


def _server_status(span: trace.Span, status: int) -> None:
    """A server span's response status, the semantic conventions' way: 5xx is an error
    (a 4xx is the client's, and leaves the server span unset)."""
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_attribute("error.type", str(status))
        span.set_status(trace.Status(trace.StatusCode.ERROR))


def _failed(span: trace.Span, exc: Exception) -> None:
    span.set_attribute("error.type", type(exc).__name__)
    match = _HTTP_STATUS.match(str(exc))
    if match:
        span.set_attribute("http.response.status_code", int(match.group(1)))
    span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)[:200]))
