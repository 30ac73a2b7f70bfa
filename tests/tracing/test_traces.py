"""One trace from a client's ``traceparent`` through the accept, the delivery attempt, the
HTTP send, the ack and the callbacks, exported over OTLP/HTTP to a real receiver."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from aiohttp import web

from tests.acks.conftest import SECRET_ENV, callbacks_section, eventually
from tests.conftest import base_config, example


async def _hooks() -> tuple[web.AppRunner, str, list[dict[str, Any]], asyncio.Event]:
    """A callback receiver counting what it got; the event is set on the second callback."""
    got: list[dict[str, Any]] = []
    second = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        got.append({"headers": dict(request.headers), "body": await request.json()})
        if len(got) >= 2:
            second.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/hooks", got, second


def traced_config(tmp_path: Any, receiver_url: str, collector_url: str, hooks_host: str) -> Any:
    return base_config(
        tmp_path,
        adapters={"web": {"type": "http", "url": receiver_url}},
        routes=[{"filing_types": ["*"], "adapters": ["web"]}],
        callbacks=callbacks_section(hooks_host),
        tracing={"otlp_endpoint": collector_url, "service_name": "edigw-test"},
    )


async def test_client_traceparent_reaches_the_receiver_and_the_exported_tree(
    tmp_path, start_gateway, receiver, collector
):
    """client span → POST /v1/filings → deliver web → POST (client) → receiver's traceparent;
    the ack and both callbacks are in the same trace, children of the accept."""
    runner, hook_url, hooks, second = await _hooks()
    try:
        gw = await start_gateway(
            traced_config(tmp_path, receiver.url, collector.url, hook_url.split("/")[2]),
            environ=SECRET_ENV,
        )
        trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
        status, body = await gw.post(
            "/v1/filings",
            example(callback_url=hook_url),
            headers={"traceparent": f"00-{trace_id}-{client_span}-01", "tracestate": "acme=1"},
        )
        assert status == 202, body
        view = await gw.wait_for(body["id"], "delivered")
        assert "_trace" in view["metadata"]  # kept with the filing, for any process
        status, acked = await gw.post(
            "/v1/acks", {"delivery_id": view["deliveries"][0]["id"], "outcome": "accepted"}
        )
        assert status in (200, 201, 202), acked
        await asyncio.wait_for(second.wait(), 20)  # a liveness bound, not a pacing

        async def callbacks_settled() -> bool:
            _, cbs = await gw.get("/v1/callbacks", params={"filing_id": body["id"]})
            return len(cbs["items"]) == 2 and all(c["state"] == "delivered" for c in cbs["items"])

        await eventually(callbacks_settled)
        await gw.stop()  # the tracer's shutdown exports every ended span before it returns
    finally:
        await runner.cleanup()

    # the receiver got the trace: its parent is the HTTP client span of the attempt
    [request] = receiver.requests
    version, got_trace, parent, flags = request["headers"]["traceparent"].split("-")
    assert (version, got_trace, flags) == ("00", trace_id, "01")
    assert request["headers"]["tracestate"] == "acme=1"
    assert b"_trace" not in request["body"]  # the kept context never reaches a body

    spans = [s for s in collector.spans if s.trace_id == trace_id]
    assert {s.service for s in spans} == {"edigw-test"}
    [accept] = [s for s in spans if s.name == "POST /v1/filings"]
    assert (accept.kind, accept.parent_id) == ("server", client_span)
    assert accept.attributes["http.request.method"] == "POST"
    assert accept.attributes["http.route"] == "/v1/filings"
    assert accept.attributes["http.response.status_code"] == 202
    [attempt] = [s for s in spans if s.name == "deliver web"]
    assert attempt.parent_id == accept.span_id
    assert attempt.attributes["edigw.filing.id"] == body["id"]
    [send] = [s for s in spans if s.parent_id == attempt.span_id]
    assert (send.name, send.kind) == ("POST", "client")
    assert send.attributes["url.full"] == receiver.url
    assert send.attributes["http.response.status_code"] == 200
    assert parent == send.span_id
    [ack] = [s for s in spans if s.name == "ack"]
    assert ack.parent_id == accept.span_id
    assert ack.attributes["edigw.ack.effect"] == "acknowledged"
    # linked to the POST /v1/acks server span (another trace: the ack poster's)
    [acks_request] = collector.named("POST /v1/acks")
    assert (acks_request.trace_id, acks_request.span_id) in ack.links
    callbacks = [s for s in spans if s.attributes.get("url.full") == hook_url]
    assert len(callbacks) == 2
    assert {(s.kind, s.parent_id) for s in callbacks} == {("client", accept.span_id)}
    assert {s.attributes["http.response.status_code"] for s in callbacks} == {204}
    sent = {h["headers"]["traceparent"].split("-")[2] for h in hooks}
    assert sent == {s.span_id for s in callbacks}


async def test_without_an_endpoint_nothing_is_traced_stored_or_sent(
    tmp_path, start_gateway, receiver
):
    """Tracing off: no tracer, no server-span middleware, no kept context, no header out."""
    data = base_config(
        tmp_path,
        adapters={"web": {"type": "http", "url": receiver.url}},
        routes=[{"filing_types": ["*"], "adapters": ["web"]}],
    )
    gw = await start_gateway(data, environ={})
    assert gw.gateway.tracer is None
    assert len(gw.gateway.app.middlewares) == 1  # errors (edge, inputs inside): no server span
    trace_id = secrets.token_hex(16)
    status, body = await gw.post(
        "/v1/filings",
        example(),
        headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
    )
    assert status == 202
    view = await gw.wait_for(body["id"], "delivered")
    assert "_trace" not in view["metadata"]
    [request] = receiver.requests
    assert "traceparent" not in request["headers"]


def test_the_standard_environment_variables_turn_tracing_on():
    """OTEL_EXPORTER_OTLP_ENDPOINT is a base URL; the traces variable a full one; config wins."""
    from gateway import config

    off = config.TracingSection()
    assert config.traces_url(off, {}) is None
    base = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}
    assert config.traces_url(off, base) == "http://collector:4318/v1/traces"
    full = {**base, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://other:4318/custom"}
    assert config.traces_url(off, full) == "http://other:4318/custom"
    on = config.TracingSection(otlp_endpoint="http://mine:4318")
    assert config.traces_url(on, full) == "http://mine:4318/v1/traces"
