"""Status callbacks: signed per Standard Webhooks, durable, retried, dead-lettered, SSRF-guarded."""

from __future__ import annotations

import asyncio

import pytest

from gateway.delivery import ssrf
from tests.acks.conftest import SECRET_ENV, callbacks_section, eventually
from tests.conftest import base_config, example, free_port


async def test_callback_is_signed_and_retried_until_the_receiver_verifies_it(
    tmp_path, start_gateway, signed_receiver
):
    """Receiver fails twice → the third attempt, same webhook-id, verifies; then the next event."""
    signed_receiver.fail_first = 2
    host = signed_receiver.url.split("/")[2]
    gw = await start_gateway(
        base_config(tmp_path, callbacks=callbacks_section(host)), environ=SECRET_ENV
    )
    s, body = await gw.post("/v1/filings", example(callback_url=signed_receiver.url))
    assert s == 202
    view = await gw.wait_for(body["id"], "delivered")
    await eventually(lambda: signed_receiver.verified)
    assert len(signed_receiver.attempts) == 3
    assert len({a["headers"]["webhook-id"] for a in signed_receiver.attempts}) == 1
    [got] = signed_receiver.verified
    assert got["event"]["type"] == "filing.delivered"
    assert got["event"]["data"]["filing_id"] == body["id"]
    assert got["event"]["data"]["deliveries"][0]["state"] == "delivered"

    async def callback_states():  # the receiver answers before the outcome is stored
        _, cbs = await gw.get("/v1/callbacks", params={"filing_id": body["id"]})
        states = [(c["state"], c["attempts"]) for c in cbs["items"]]
        return states if states and states[0][0] != "in_flight" else None

    assert await eventually(callback_states) == [("delivered", 3)]

    delivery_id = view["deliveries"][0]["id"]
    await gw.post("/v1/acks", {"delivery_id": delivery_id, "outcome": "rejected", "codes": ["S01"]})
    await eventually(lambda: len(signed_receiver.verified) == 2)
    second = signed_receiver.verified[1]["event"]
    assert (second["type"], second["data"]["previous_status"]) == ("filing.rejected", "delivered")
    assert second["data"]["deliveries"][0]["ack"]["codes"] == ["S01"]


async def test_dead_callback_is_visible_and_never_blocks_delivery(tmp_path, start_gateway):
    """A callback receiver that is down: the filing is delivered; the event ends dead, listed."""
    port = free_port()
    section = callbacks_section(f"127.0.0.1:{port}")
    section["retry"] = {"max_attempts": 2, "initial_delay": "20ms", "jitter": "0s"}
    gw = await start_gateway(base_config(tmp_path, callbacks=section), environ=SECRET_ENV)
    _, body = await gw.post("/v1/filings", example(callback_url=f"http://127.0.0.1:{port}/h"))
    await gw.wait_for(body["id"], "delivered")

    async def dead():
        _, cbs = await gw.get("/v1/callbacks", params={"state": "dead"})
        return cbs["items"]

    [item] = await eventually(dead)
    assert item["attempts"] == 2 and item["filing_id"] == body["id"]
    _, hist = await gw.get(f"/v1/filings/{body['id']}/history")
    assert any(e["event"] == "callback.dead" for e in hist["events"])


@pytest.fixture
async def connection_counter():
    """A loopback TCP listener recording the peer port of every connection, in accept order."""
    accepted: list[int] = []

    async def on_connect(reader, writer):
        accepted.append(writer.get_extra_info("peername")[1])
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield port, accepted
    server.close()
    await server.wait_closed()


async def connections_before_mine(port: int, accepted: list[int]) -> list[int]:
    """Connect to the listener myself and wait until it accepted me: connections are
    accepted in the order they were made, so any made before mine are listed first."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    mine = writer.get_extra_info("sockname")[1]
    try:
        await eventually(lambda: mine in accepted)
    finally:
        writer.close()
    return accepted[: accepted.index(mine)]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://169.254.169.254/latest/meta-data/", []),
        ("http://10.0.0.1/hook", []),
        ("http://[::ffff:127.0.0.1]:{port}/hook", []),
        ("http://127.0.0.1:{port}/hook", []),
        ("http://127.0.0.1:{port}/hook", ["hooks.example.com"]),
        ("http://[::ffff:127.0.0.1]:{port}/hook", ["::ffff:127.0.0.1"]),
        ("http://localhost:{port}/hook", ["localhost:{port}"]),
        ("http://169.254.169.254/latest/meta-data/", ["169.254.169.254"]),
    ],
)
async def test_refused_callback_host_is_422_at_intake_without_connecting(
    tmp_path, start_gateway, connection_counter, url, allowed
):
    """Link-local, private, loopback, IPv4-mapped (or unsigned) hosts → 422, 0 connections."""
    port, accepted = connection_counter
    url = url.format(port=port)
    section = {"allowed_hosts": [a.format(port=port) for a in allowed]}
    gw = await start_gateway(base_config(tmp_path, callbacks=section), environ=SECRET_ENV)
    s, body = await gw.post("/v1/filings", example(callback_url=url))
    assert s == 422, body
    assert body["error"]["code"] == "callback_refused"
    s, batch = await gw.post("/v1/filings/batch", [example(callback_url=url)])
    assert batch["results"][0]["http_status"] == 422
    assert await connections_before_mine(port, accepted) == []
    assert (await gw.get("/v1/filings"))[1]["items"] == []


async def test_guarded_resolver_connects_only_to_checked_addresses():
    """A name resolving to a public and a private address is refused whole; literals pinned."""

    async def lookup(host, port):
        return {"mixed.example": ["93.184.215.14", "10.1.2.3"], "ok.example": ["93.184.215.14"]}[
            host
        ]

    policy = ssrf.HostPolicy(["mixed.example", "ok.example:443"], lookup=lookup)
    resolver = ssrf.GuardedResolver(policy)
    with pytest.raises(OSError, match="refused address"):
        await resolver.resolve("mixed.example", 80)
    [result] = await resolver.resolve("ok.example", 443)
    assert (result["host"], result["port"]) == ("93.184.215.14", 443)
    with pytest.raises(OSError, match="not in"):
        await resolver.resolve("ok.example", 8443)
    assert ssrf.is_special(ssrf._literal("::ffff:8.8.8.8"))


def test_allowed_hosts_come_from_a_json_list_in_the_environment(tmp_path):
    """EDIGW_CALLBACKS__ALLOWED_HOSTS='["a:1","b"]' sets [callbacks] allowed_hosts."""
    from gateway import config

    env = {"EDIGW_CALLBACKS__ALLOWED_HOSTS": '["tms.internal:8443", "10.20.0.7"]'}
    cfg = config.parse_config(base_config(tmp_path), env)
    assert cfg.callbacks.allowed_hosts == ["tms.internal:8443", "10.20.0.7"]
    policy = ssrf.HostPolicy(cfg.callbacks.allowed_hosts)
    assert policy.host_allowed("tms.internal", 8443) and not policy.host_allowed("tms.internal", 1)
    assert policy.address_allowed("10.20.0.7", 80) and not policy.address_allowed("10.20.0.8", 80)
