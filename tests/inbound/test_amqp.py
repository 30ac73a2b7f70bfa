"""A RabbitMQ queue as a source: ack after commit, poison to rejected_events, kill -9."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time

import aiohttp
import pytest

from tests.conftest import base_config, free_port
from tests.inbound.conftest import (
    AMQP_URL,
    TMS_SOURCE,
    booking,
    cloudevent,
    filings,
    log_events,
    rejected,
    start_serve,
)
from tests.test_process import write_toml


def queue_config(tmp_path, queue: str, *, url: str = AMQP_URL, **gateway):
    source = {**TMS_SOURCE, "kind": "amqp", "url": url, "queue": queue, "prefetch": 50,
              "reconnect_max": "1s"}  # fmt: skip
    return base_config(tmp_path, gateway=gateway, sources={"tms_queue": source})


def message(n: int, **changes) -> tuple[bytes, dict]:
    return json.dumps(booking(n, **changes)).encode(), {"message_id": f"m-{n}"}


async def wait_until(predicate, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.mark.services
async def test_queue_messages_become_filings_and_the_queue_drains(tmp_path, start_gateway, rabbit):
    """Plain, CloudEvent (binary + structured) messages → filings with queue provenance."""
    queue = rabbit.new_queue()
    ce_binary = (
        json.dumps(booking(101, mode="air")).encode(),
        {"content_type": "application/json",
         "headers": {"ce-specversion": "1.0", "ce-id": "ce-101", "ce-source": "/tms/eu",
                     "ce-type": "com.acme.tms.shipment.booked"}},
    )  # fmt: skip
    ce_structured = (
        json.dumps(cloudevent(booking(102), id="ce-102")).encode(),
        {"content_type": "application/cloudevents+json"},
    )
    await rabbit.publish(queue, [message(i) for i in range(10)] + [ce_binary, ce_structured])
    gw = await start_gateway(queue_config(tmp_path, queue))
    await wait_until(lambda: len(filings(tmp_path / "gateway.db")) == 12)
    rows = filings(tmp_path / "gateway.db")
    assert {r["source"] for r in rows} == {f"amqp:{queue}"}
    by_event = {r["source_event_id"]: r for r in rows}
    assert by_event["m-3"]["idempotency_key"] == f"amqp:{queue}#m-3"
    assert by_event["ce-101"]["filing_type"] == "manifest.air"
    assert by_event["ce-101"]["idempotency_key"] == "ce:/tms/eu#ce-101"
    await wait_until(lambda: gw.gateway.consumers["tms_queue"].status.counts["accepted"] == 12)
    ready, consumers = await rabbit.depth(queue)
    assert (ready, consumers) == (0, 1)
    _, body = await gw.get("/readyz")
    assert body["status"] == "ready" and body["sources"]["tms_queue"]["status"] == "ok"


@pytest.mark.services
async def test_poison_message_is_stored_once_acked_and_not_redelivered(
    tmp_path, start_gateway, rabbit
):
    """A message no normalizer can read → one rejected_events row; the queue moves on."""
    queue = rabbit.new_queue()
    poison = (b"\x00 definitely not json", {"message_id": "poison-1"})
    unmappable = message(7, mode="barge")
    await rabbit.publish(queue, [poison, unmappable, message(8)])
    gw = await start_gateway(queue_config(tmp_path, queue))
    await wait_until(lambda: len(filings(tmp_path / "gateway.db")) == 1)
    # a barrier: a redelivered (requeued) message goes back ahead of one published now, so
    # once this one is stored, any redelivery of the first three has been consumed
    await rabbit.publish(queue, [message(9)])
    status = gw.gateway.consumers["tms_queue"].status.counts
    await wait_until(lambda: status["accepted"] == 2)
    rows = rejected(tmp_path / "gateway.db")
    assert [(r["event_id"], json.loads(r["details"])[0]["loc"]) for r in rows] == [
        ("poison-1", "body"),
        ("m-7", "data.booking.mode"),
    ]
    assert (status["rejected"], status["accepted"]) == (2, 2)  # each seen exactly once
    assert (await rabbit.depth(queue))[0] == 0
    _, listed = await gw.get("/v1/rejected-events")
    assert [i["event_id"] for i in listed["items"]] == ["m-7", "poison-1"]
    with sqlite3.connect(tmp_path / "gateway.db") as conn:
        audited = conn.execute("SELECT COUNT(*) FROM audit WHERE event = 'event.rejected'")
        assert audited.fetchone()[0] == 2


@pytest.mark.services
async def test_redelivered_message_is_recognised_as_a_duplicate_and_acked(
    tmp_path, start_gateway, rabbit
):
    """The same message id again (as after a crash before the ack) → no second filing."""
    queue = rabbit.new_queue()
    await rabbit.publish(queue, [message(1), message(2), message(1)])
    gw = await start_gateway(queue_config(tmp_path, queue))
    counts = gw.gateway.consumers["tms_queue"].status.counts
    await wait_until(lambda: counts["accepted"] + counts["duplicate"] == 3)
    assert (counts["accepted"], counts["duplicate"]) == (2, 1)
    assert sorted(r["source_event_id"] for r in filings(tmp_path / "gateway.db")) == ["m-1", "m-2"]
    assert (await rabbit.depth(queue))[0] == 0


async def test_unreachable_broker_leaves_gateway_ready_with_the_source_degraded(
    tmp_path, start_gateway
):
    """No broker at the URL: /readyz is 200, and reports the source degraded, retrying."""
    url = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    gw = await start_gateway(queue_config(tmp_path, "nowhere", url=url))
    consumer = gw.gateway.consumers["tms_queue"]
    await wait_until(lambda: consumer.status.state == "degraded", timeout=10)
    status, body = await gw.get("/readyz")
    assert status == 200 and body["status"] == "ready"
    assert body["sources"]["tms_queue"]["status"] == "degraded"
    assert "guest:***@" in body["sources"]["tms_queue"]["target"]
    status, _ = await gw.post("/v1/filings", {"filing_type": "isf", "environment": "cert",
                              "reference": "R", "filer_code": "XYZ", "payload": {}})  # fmt: skip
    assert status == 202  # HTTP intake is unaffected


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_thousand_queued_events_survive_sigkill_midway_exactly_once(tmp_path, rabbit):
    """1,000 messages, serve killed -9 mid-stream and restarted → 1,000 filings, queue empty."""
    queue = rabbit.new_queue()
    total = 1000
    await rabbit.publish(queue, [message(i) for i in range(total)])
    assert (await rabbit.depth(queue))[0] == total
    port = free_port()
    cfg = write_toml(
        tmp_path / "gw.toml", queue_config(tmp_path, queue, listen=f"127.0.0.1:{port}")
    )
    db, log = tmp_path / "gateway.db", tmp_path / "serve.log"
    started = time.monotonic()
    proc = await start_serve(cfg, port, log=log)
    try:
        await wait_until(lambda: len(filings(db)) >= total // 3, timeout=120)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    at_kill = len(filings(db))
    assert at_kill < total, "the kill came too late to prove anything"
    proc = await start_serve(cfg, port, log=log)
    try:
        await wait_until(lambda: len(filings(db)) >= total, timeout=180)
        elapsed = time.monotonic() - started
        async with aiohttp.ClientSession() as s:
            for _ in range(200):  # until the restarted gateway has acked the last one
                async with s.get(f"http://127.0.0.1:{port}/readyz") as r:
                    seen = (await r.json())["sources"]["tms_queue"]
                if seen["accepted"] == total - at_kill:
                    break
                await asyncio.sleep(0.05)
        assert seen["accepted"] == total - at_kill and seen["rejected"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    rows = filings(db)
    ids = [r["source_event_id"] for r in rows]
    assert len(rows) == total and sorted(ids) == sorted(f"m-{i}" for i in range(total))
    assert (await rabbit.depth(queue)) == (0, 0)
    redelivered = log_events(log, "filing.duplicate")
    assert redelivered == seen["duplicate"]
    print(f"\n1,000-event kill test: {elapsed:.1f}s, killed at {at_kill}, "
          f"{redelivered} redelivered duplicates recognised, 0 lost, 0 double filings")  # fmt: skip


@pytest.mark.services
async def test_cloudevents_in_amqp_headers_under_every_binding_prefix(
    tmp_path, start_gateway, rabbit
):
    """`cloudEvents:` / `cloudEvents_` (AMQP 1.0 binding) and `ce_` headers as the consumer
    sees them (a native timestamp included) file once per id; no id → rejected, not filed."""
    from datetime import UTC, datetime

    queue = rabbit.new_queue()
    at = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)

    def binary(prefix: str, n: int, **attrs):
        headers = {f"{prefix}{k}": v for k, v in
                   {"specversion": "1.0", "id": f"ce-a{n}", "source": "/tms/eu",
                    "type": "com.acme.tms.shipment.booked", "time": at, **attrs}.items()
                   if v is not None}  # fmt: skip
        body = json.dumps(booking(n, mode="air")).encode()
        return body, {"content_type": "application/json", "headers": headers}

    await rabbit.publish(
        queue,
        [
            binary("cloudEvents:", 1),
            binary("cloudEvents_", 2),
            binary("ce_", 3),
            binary("cloudEvents:", 1),  # the producer sent it again: same id, same filing
            binary("cloudEvents:", 4, id=None),
        ],
    )
    gw = await start_gateway(queue_config(tmp_path, queue))
    counts = gw.gateway.consumers["tms_queue"].status.counts
    await wait_until(lambda: sum(counts.values()) == 5)
    assert (counts["accepted"], counts["duplicate"], counts["rejected"]) == (3, 1, 1)
    rows = filings(tmp_path / "gateway.db")
    assert [(r["idempotency_key"], r["filing_type"]) for r in rows] == [
        (f"ce:/tms/eu#ce-a{n}", "manifest.air") for n in (1, 2, 3)
    ]
    [row] = rejected(tmp_path / "gateway.db")
    assert json.loads(row["details"]) == [{"loc": "header.cloudEvents:id", "msg": "required"}]


# --- AMQP 1.0 producers (the CloudEvents AMQP binding) --------------------------------------

#: the header RabbitMQ 3.10.8 (plugin rabbitmq_amqp1_0) handed an AMQP 0-9-1 consumer for a
#: message the CloudEvents SDK's ``amqp.to_binary`` made and qpid-proton sent over AMQP 1.0
RABBITMQ_3_APP_PROPERTIES = bytes.fromhex(
    "005374d10000009f0000000aa110636c6f75644576656e74735f74797065a11c636f6d2e61636d652e746d"
    "732e736869706d656e742e626f6f6b6564a112636c6f75644576656e74735f736f75726365a1072f746d73"
    "2f6575a10e636c6f75644576656e74735f6964a103702d31a117636c6f75644576656e74735f7370656376"
    "657273696f6ea103312e30a110636c6f75644576656e74735f74696d6581000001a237300807"
)


def test_rabbitmq_3_encoded_application_properties_read_as_a_cloudevent():
    """`x-amqp-1.0-app-properties` as RabbitMQ 3.x hands it over → the SDK's event."""
    from gateway.inbound import cloudevents

    headers = {"x-amqp-1.0-app-properties": RABBITMQ_3_APP_PROPERTIES}
    body = json.dumps(booking(1)).encode()
    envelope = cloudevents.from_amqp(headers, "application/json", body)
    assert envelope is not None
    assert (envelope.id, envelope.source, envelope.type) == (
        "p-1",
        "/tms/eu",
        "com.acme.tms.shipment.booked",
    )
    assert envelope.time is not None and envelope.time.year == 2026  # epoch ms, as sent
    assert envelope.data == booking(1)


def test_amqp10_decoder_agrees_with_qpid_proton_on_every_simple_type():
    """Each simple AMQP 1.0 type proton encodes in application-properties decodes the same."""
    import uuid
    from datetime import UTC, datetime

    import proton

    from gateway.inbound import amqp10

    at = datetime(2018, 4, 5, 3, 56, 24, 123000, tzinfo=UTC)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    values = {
        "s": "text é", "long": -(2**40), "int": proton.int32(-7), "uint": proton.uint(7),
        "ulong": proton.ulong(2**40), "ubyte": proton.ubyte(200), "short": proton.short(-3),
        "bool": True, "false": False, "null": None, "double": 2.5,
        "sym": proton.symbol("com.example"), "bin": b"\x00\xff", "uuid": ident,
        "ts": proton.timestamp(int(at.timestamp() * 1000)), "big": "x" * 300,
    }  # fmt: skip
    data = proton.Data()
    data.put_object(values)
    blob = data.encode()
    decoded = amqp10.decode_application_properties(blob)
    assert decoded == {**values, "ts": at}
    described = proton.Data()
    described.put_object(proton.Described(proton.ulong(0x74), {"cloudEvents:id": "d-1"}))
    assert amqp10.decode_application_properties(described.encode()) == {"cloudEvents:id": "d-1"}


@pytest.mark.services
async def test_cloudevents_sent_over_amqp_1_0_file_once(tmp_path, start_gateway, rabbit):
    """The CloudEvents SDK's AMQP binding, sent by qpid-proton over AMQP 1.0 (`cloudEvents_`
    and `cloudEvents:` properties), filed from the queue once per id; no id → rejected."""
    import asyncio as _asyncio

    from cloudevents.core.bindings import amqp as ce_amqp
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent
    from proton import Message
    from proton.utils import BlockingConnection

    queue = rabbit.new_queue()
    await rabbit.publish(queue, [])  # declares it durable, as the source expects

    def event(n: int) -> Message:
        ce = CloudEvent(
            {"type": "com.acme.tms.shipment.booked", "source": "/tms/eu", "id": f"a10-{n}",
             "datacontenttype": "application/json"},
            booking(n, mode="air"),
        )  # fmt: skip
        wire = ce_amqp.to_binary(ce, JSONFormat())
        props = dict(wire.application_properties)
        if n == 2:  # the other prefix the binding allows
            props = {k.replace("cloudEvents_", "cloudEvents:"): v for k, v in props.items()}
        if n == 3:
            props.pop("cloudEvents_id")
        return Message(
            body=wire.application_data,
            content_type=wire.properties["content-type"],
            properties=props,
            inferred=True,
            durable=True,
        )

    def send() -> None:
        conn = BlockingConnection(
            "amqp://127.0.0.1:5672", user="guest", password="guest", allowed_mechs="PLAIN"
        )
        try:
            sender = conn.create_sender(f"/amq/queue/{queue}")
            for n in (1, 2, 1, 3):
                sender.send(event(n))
        finally:
            conn.close()

    await _asyncio.to_thread(send)
    gw = await start_gateway(queue_config(tmp_path, queue))
    counts = gw.gateway.consumers["tms_queue"].status.counts
    await wait_until(lambda: sum(counts.values()) == 4)
    assert (counts["accepted"], counts["duplicate"], counts["rejected"]) == (2, 1, 1)
    rows = filings(tmp_path / "gateway.db")
    assert [r["idempotency_key"] for r in rows] == ["ce:/tms/eu#a10-1", "ce:/tms/eu#a10-2"]
    [row] = rejected(tmp_path / "gateway.db")
    assert json.loads(row["details"])[0]["loc"].endswith("id")


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=80)
    | st.builds(lambda tail: RABBITMQ_3_APP_PROPERTIES[:tail], st.integers(0, 200))
)
def test_a_garbled_encoded_section_is_our_own_error(blob):
    """Random or truncated `x-amqp-1.0-app-properties` → InvalidInput naming the header."""
    from gateway import errors
    from gateway.inbound import amqp10

    try:
        amqp10.expand({"x-amqp-1.0-app-properties": blob})
    except errors.InvalidInput as exc:
        where = exc.details[0]["loc"]
    else:
        where = "header.x-amqp-1.0-app-properties"  # it decoded: fine too
    assert where == "header.x-amqp-1.0-app-properties"
