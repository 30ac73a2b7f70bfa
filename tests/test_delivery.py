"""Delivery through real adapters: retries, dead letters, ordering, restart."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3

from tests.conftest import base_config, example


def http_config(tmp_path, receiver, **retry):
    return base_config(
        tmp_path,
        adapters={"ace": {"type": "http", "url": receiver.url, "timeout": "2s", "concurrency": 4}},
        routes=[{"adapters": ["ace"]}],
        retry={
            "max_attempts": 6,
            "initial_delay": "100ms",
            "max_delay": "2s",
            "jitter": "0s",
            **retry,
        },
    )


async def test_http_receiver_failing_n_times_gets_it_on_attempt_n_plus_1(
    tmp_path, start_gateway, receiver
):
    """Three 503s then 200 → delivered after 4 attempts, spaced 0.1, 0.2, 0.4 s apart."""
    receiver.script = [503, 503, 503]
    gw = await start_gateway(http_config(tmp_path, receiver))
    _, body = await gw.post("/v1/filings", example())
    view = await gw.wait_for(body["id"], "delivered")
    assert view["deliveries"][0]["attempts"] == 4
    assert len(receiver.requests) == 4
    assert set(receiver.keys) == {view["deliveries"][0]["id"]}
    gaps = [
        b["at"] - a["at"] for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)
    ]
    for gap, expected in zip(gaps, [0.1, 0.2, 0.4], strict=True):
        # the backoff is a lower bound; the upper one leaves a loaded machine room while
        # still telling 0.1/0.2/0.4 from the 2 s cap
        assert expected * 0.9 <= gap <= expected + 1.0, gaps
    assert view["deliveries"][0]["receipt"]["status"] == "200"


async def test_http_400_is_dead_at_once(tmp_path, start_gateway, receiver):
    """A 400 is permanent: dead after one attempt, with the receiver's answer kept."""
    receiver.script = [400]
    gw = await start_gateway(http_config(tmp_path, receiver))
    _, body = await gw.post("/v1/filings", example())
    view = await gw.wait_for(body["id"], "dead")
    d = view["deliveries"][0]
    assert d["attempts"] == 1 and "HTTP 400" in d["last_error"]
    # a later filing goes through the same dispatcher: by the time it arrives, the dead
    # one (claimed first, were it claimable) has not been sent again
    _, later = await gw.post("/v1/filings", example(reference="LATER"))
    later_view = await gw.wait_for(later["id"], "delivered")
    assert receiver.keys == [d["id"], later_view["deliveries"][0]["id"]]
    view = (await gw.get(f"/v1/filings/{body['id']}"))[1]
    assert view["deliveries"][0]["attempts"] == 1 and view["status"] == "dead"


async def test_retry_after_is_honoured(tmp_path, start_gateway, receiver):
    """A 429 with Retry-After: 1 waits about a second, not the 0.1 s backoff."""
    receiver.script = [429]
    receiver.headers_for_failure = {"Retry-After": "1"}
    gw = await start_gateway(http_config(tmp_path, receiver))
    _, body = await gw.post("/v1/filings", example())
    await gw.wait_for(body["id"], "delivered")
    gap = receiver.requests[1]["at"] - receiver.requests[0]["at"]
    assert 0.9 <= gap <= 2.5  # the 0.1 s backoff would come far sooner (room for load)


async def test_attempts_exhausted_is_dead(tmp_path, start_gateway, receiver):
    """A receiver that always fails → dead after max_attempts, saying why."""
    receiver.script = [500] * 10
    gw = await start_gateway(http_config(tmp_path, receiver, max_attempts=3, initial_delay="20ms"))
    _, body = await gw.post("/v1/filings", example())
    view = await gw.wait_for(body["id"], "dead")
    assert view["deliveries"][0]["attempts"] == 3
    assert "max_attempts=3" in view["deliveries"][0]["last_error"]


async def test_unreachable_receiver_is_transient(tmp_path, start_gateway):
    """Connection refused is retried, not dead at once."""
    from tests.conftest import free_port

    data = base_config(
        tmp_path,
        adapters={"ace": {"type": "http", "url": f"http://127.0.0.1:{free_port()}/x"}},
        routes=[{"adapters": ["ace"]}],
        retry={"max_attempts": 2, "initial_delay": "20ms", "jitter": "0s"},
    )
    gw = await start_gateway(data)
    _, body = await gw.post("/v1/filings", example())
    view = await gw.wait_for(body["id"], "dead")
    assert view["deliveries"][0]["attempts"] == 2
    assert "Connect" in view["deliveries"][0]["last_error"]


async def test_one_in_flight_per_ordering_key_in_acceptance_order(
    tmp_path, start_gateway, receiver
):
    """Filings sharing an ordering key arrive one at a time, in acceptance order."""
    receiver.script = [503, 200, 503]
    gw = await start_gateway(http_config(tmp_path, receiver))
    keys = ["K1", "K2"]
    order: dict[str, list[str]] = {k: [] for k in keys}
    for i in range(6):
        key = keys[i % 2]
        _, body = await gw.post("/v1/filings", example(reference=f"R{i}", ordering_key=key))
        order[key].append(body["id"])
    for ids_ in order.values():
        for filing_id in ids_:
            await gw.wait_for(filing_id, "delivered")
    arrived: dict[str, list[str]] = {k: [] for k in keys}
    last_seen: dict[str, int] = {}
    first_seen: dict[str, int] = {}
    for i, r in enumerate(receiver.requests):
        doc = json.loads(r["body"])
        if doc["id"] not in arrived[doc["ordering_key"]]:
            arrived[doc["ordering_key"]].append(doc["id"])
            first_seen[doc["id"]] = i
        last_seen[doc["id"]] = i
    assert arrived == order
    for ids_ in order.values():  # never two of one key in flight: no interleaving
        for earlier, later in itertools.pairwise(ids_):
            assert last_seen[earlier] < first_seen[later]


async def test_dead_predecessor_blocks_its_key_until_retried(tmp_path, start_gateway, receiver):
    """After a dead delivery, later filings of its key are blocked; retry releases them."""
    receiver.script = [422]
    gw = await start_gateway(http_config(tmp_path, receiver))
    _, first = await gw.post("/v1/filings", example(reference="A", ordering_key="K"))
    await gw.wait_for(first["id"], "dead")
    _, second = await gw.post("/v1/filings", example(reference="B", ordering_key="K"))
    _, other = await gw.post("/v1/filings", example(reference="C", ordering_key="OTHER"))
    await gw.wait_for(other["id"], "delivered")
    await gw.wait_for(second["id"], "blocked")
    status, conflict = await gw.post(f"/v1/filings/{other['id']}/retry")
    assert status == 409 and conflict["error"]["code"] == "conflict"
    status, view = await gw.post(f"/v1/filings/{first['id']}/retry")
    assert status == 200 and view["deliveries"][0]["attempts"] == 0
    await gw.wait_for(first["id"], "delivered")
    await gw.wait_for(second["id"], "delivered")
    refs = [json.loads(r["body"])["reference"] for r in receiver.requests]
    assert refs.index("A", 1) < refs.index("B")


async def test_cancelling_a_dead_predecessor_unblocks_the_key(tmp_path, start_gateway, receiver):
    """Cancel the dead one: its successor goes; cancel again → 409."""
    receiver.script = [400]
    gw = await start_gateway(http_config(tmp_path, receiver))
    _, first = await gw.post("/v1/filings", example(reference="A", ordering_key="K"))
    await gw.wait_for(first["id"], "dead")
    _, second = await gw.post("/v1/filings", example(reference="B", ordering_key="K"))
    await gw.wait_for(second["id"], "blocked")
    status, view = await gw.post(f"/v1/filings/{first['id']}/cancel")
    assert status == 200 and view["status"] == "cancelled"
    await gw.wait_for(second["id"], "delivered")
    status, _ = await gw.post(f"/v1/filings/{first['id']}/cancel")
    assert status == 409
    status, _ = await gw.post("/v1/filings/fil_missing/cancel")
    assert status == 404


async def test_fan_out_delivers_to_every_routed_adapter(tmp_path, start_gateway, receiver):
    """One filing routed to two adapters → two deliveries, both delivered."""
    data = http_config(tmp_path, receiver)
    data["adapters"]["outbox"] = {"type": "filedrop", "directory": str(tmp_path / "out")}
    data["routes"] = [{"adapters": ["ace", "outbox"]}]
    gw = await start_gateway(data)
    _, body = await gw.post("/v1/filings", example())
    view = await gw.wait_for(body["id"], "delivered")
    assert sorted(d["adapter"] for d in view["deliveries"]) == ["ace", "outbox"]
    assert len(receiver.requests) == 1 and len(list((tmp_path / "out").iterdir())) == 1


async def test_restart_with_500_queued_delivers_each_exactly_once(tmp_path, start_gateway):
    """Stop while 500 filings are queued; a second start delivers all, one file each."""
    data = base_config(tmp_path)
    data["adapters"]["outbox"]["concurrency"] = 1
    data["adapters"]["outbox"]["fsync"] = True
    gw = await start_gateway(data)
    batch = [example(reference=f"Q-{i}") for i in range(500)]
    status, body = await gw.post("/v1/filings/batch", batch)
    assert status == 200 and body["accepted"] == 500
    await gw.stop()
    with sqlite3.connect(tmp_path / "gateway.db") as conn:
        states = dict(conn.execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state"))
    assert states.get("pending", 0) > 0, states  # really stopped with work queued
    assert "in_flight" not in states  # leases were released at shutdown
    gw2 = await start_gateway(data)
    for _ in range(500):
        with sqlite3.connect(tmp_path / "gateway.db") as conn:
            done = conn.execute(
                "SELECT COUNT(*) FROM deliveries WHERE state = 'delivered'"
            ).fetchone()[0]
        if done == 500:
            break
        await asyncio.sleep(0.05)
    assert done == 500
    files = list((tmp_path / "outbox").iterdir())
    with sqlite3.connect(tmp_path / "gateway.db") as conn:
        delivery_ids = {r[0] for r in conn.execute("SELECT id FROM deliveries")}
    assert len(files) == 500 and {f.stem for f in files} == delivery_ids
    await gw2.stop()


async def test_delivery_sent_logs_one_small_line_without_the_receipt(
    tmp_path, start_gateway, receiver
):
    """A send's log line names the delivery, its attempt, outcome and duration; the receipt
    (kept in the store and the trail) is not walked and rendered again for the log."""
    import io

    from gateway import logs

    stream = io.StringIO()
    logs.configure("json", "info", stream=stream)
    gw = await start_gateway(http_config(tmp_path, receiver))
    _, body = await gw.post("/v1/filings", example())
    view = await gw.wait_for(body["id"], "delivered")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    sent = [line for line in lines if line["event"] == "delivery.sent"]
    assert len(sent) == 1, sent
    delivery = view["deliveries"][0]
    assert sent[0]["delivery_id"] == delivery["id"] and sent[0]["filing_id"] == body["id"]
    assert sent[0]["adapter"] == "ace" and sent[0]["attempt"] == 1
    assert sent[0]["status"] == "200" and sent[0]["duration_ms"] >= 0
    assert "receipt" not in sent[0] and delivery["receipt"]["status"] == "200"
