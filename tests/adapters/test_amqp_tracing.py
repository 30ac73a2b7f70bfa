"""A traced filing published by the ``amqp`` adapter carries the attempt's W3C context as
AMQP message headers, and the exported producer span follows the messaging conventions."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.adapters.conftest import unique
from tests.conftest import base_config, example
from tests.tracing.otlp import otlp_collector

pytestmark = pytest.mark.services
pytest.importorskip("aio_pika")


async def test_amqp_send_carries_traceparent_and_a_producer_span(
    tmp_path, start_gateway, rabbitmq_url: str, rabbit: Any
) -> None:
    """client span → accept → deliver → ``publish amq.default`` (producer) → message header."""
    queue = await rabbit.declare_queue(unique("q"), durable=False, auto_delete=False)
    rabbit.made.append(("queue", queue.name))
    async with otlp_collector() as collector:
        data = base_config(
            tmp_path,
            adapters={
                "broker": {
                    "type": "amqp",
                    "url": rabbitmq_url,
                    "routing_key": queue.name,
                    "timeout": "5s",
                }
            },
            routes=[{"filing_types": ["*"], "adapters": ["broker"]}],
            tracing={"otlp_endpoint": collector.url},
        )
        gw = await start_gateway(data, environ={})
        trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
        status, body = await gw.post(
            "/v1/filings",
            example(),
            headers={"traceparent": f"00-{trace_id}-{client_span}-01"},
        )
        assert status == 202
        async with queue.iterator() as messages:
            async for message in messages:  # the broker hands it over: no polling
                await message.ack()
                break
        await gw.wait_for(body["id"], "delivered")
        await gw.stop()  # exports every ended span
    headers = message.headers
    _, got_trace, parent, _ = str(headers["traceparent"]).split("-")
    assert got_trace == trace_id
    [publish] = [s for s in collector.spans if s.name == "publish amq.default"]
    assert (publish.kind, publish.trace_id, publish.span_id) == ("producer", trace_id, parent)
    assert publish.attributes["messaging.system"] == "rabbitmq"
    assert publish.attributes["messaging.destination.name"] == "amq.default"
    assert publish.attributes["messaging.rabbitmq.destination.routing_key"] == queue.name
    assert publish.attributes["messaging.message.conversation_id"] == body["id"]
    [attempt] = [s for s in collector.spans if s.span_id == publish.parent_id]
    assert attempt.name == "deliver broker"
    [accept] = [s for s in collector.spans if s.span_id == attempt.parent_id]
    assert (accept.name, accept.parent_id) == ("POST /v1/filings", client_span)
