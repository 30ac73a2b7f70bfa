"""The three sequences of the lifecycle issue, end to end through a real gateway on loopback,
on SQLite and on PostgreSQL: a cancel while the send is in flight, acks after a positive
ack, and messages whose own fault used to hold an adapter's breaker open."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway import ids, models, values
from gateway.rules import normalize
from tests.conftest import Receiver, base_config


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 20.0) -> Any:
    """Poll a real condition until it holds (a liveness bound, not a speed target)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.02)


def http_config(tmp_path: Path, url: str, store: str, **sections: Any) -> dict[str, Any]:
    data = base_config(tmp_path, **sections)
    data["gateway"]["store"] = store
    data["adapters"] = {"ace": {"type": "http", "url": url, "timeout": "10s"}}
    data["routes"] = [{"filing_types": ["*"], "adapters": ["ace"]}]
    return data


def isf(reference: str, **changes: Any) -> dict[str, Any]:
    return {
        "filing_type": "isf",
        "environment": "cert",
        "reference": reference,
        "filer_code": "ABC1",
        "payload": {"importer": "ACME", "bill_of_lading": reference},
        **changes,
    }


async def events(gw: Any, filing_id: str) -> list[str]:
    _, hist = await gw.get(f"/v1/filings/{filing_id}/history")
    return [e["event"] for e in hist["events"]]


# --- 1. cancel while a send is in flight ----------------------------------------------------


async def test_cancel_while_the_send_is_in_flight_is_refused_and_the_send_recorded(
    store_url: str, tmp_path: Path, receiver: Receiver, start_gateway: Any
) -> None:
    """The receiver holds the request; cancel (single and bulk) is refused with 409
    delivery_in_flight naming when to try again; the 200 is recorded as delivered with
    its receipt, and the trail has delivery.sent and no delivery.cancelled."""
    receiver.hang = asyncio.Event()
    gw = await start_gateway(http_config(tmp_path, receiver.url, store_url))
    status, body = await gw.post("/v1/filings", isf("ISF-INFLIGHT-1"))
    assert status == 202
    filing_id = body["id"]

    async def receiver_has_it() -> bool:
        return len(receiver.requests) == 1

    await until(receiver_has_it, "the receiver got the request")
    status, refused = await gw.post(f"/v1/filings/{filing_id}/cancel")
    assert status == 409, refused
    assert refused["error"]["code"] == "delivery_in_flight"
    assert refused["error"]["details"]["retry_after"]
    status, bulk = await gw.post(
        "/v1/deliveries/cancel", {"adapter": "ace", "reason": "operator clean-up"}
    )
    assert status == 200 and (bulk["matched"], bulk["count"]) == (0, 0), bulk
    receiver.hang.set()
    view = await gw.wait_for(filing_id, "delivered", timeout=20)
    assert view["deliveries"][0]["receipt"]["status"] == "200"
    trail = await events(gw, filing_id)
    assert "delivery.sent" in trail and "delivery.cancelled" not in trail
    status, _ = await gw.post(f"/v1/filings/{filing_id}/cancel")
    assert status == 409  # delivered: nothing left to cancel
    assert len(receiver.requests) == 1


# --- 2. acknowledgements only move forward --------------------------------------------------


async def test_rejections_after_an_accepted_ack_are_conflicts_and_resend_nothing(
    store_url: str, tmp_path: Path, receiver: Receiver, start_gateway: Any
) -> None:
    """accepted, then three distinct E90 rejections: each is stored as a conflict, the
    filing stays acknowledged, nothing is scheduled (no delivery is waiting), the
    conflict shows on the filing, the list filter and the metrics; an operator's resend
    needs a reason and clears the flag."""
    data = http_config(tmp_path, receiver.url, store_url, acks={"resubmit_codes": ["E90"]})
    gw = await start_gateway(data)
    _, body = await gw.post("/v1/filings", isf("ISF-ACKED-1"))
    filing_id = body["id"]
    view = await gw.wait_for(filing_id, "delivered")
    delivery_id = view["deliveries"][0]["id"]
    status, out = await gw.post("/v1/acks", {"delivery_id": delivery_id, "outcome": "accepted"})
    assert status == 200 and out["acks"][0]["effect"] == "acknowledged"
    for n in range(3):
        status, out = await gw.post(
            "/v1/acks",
            {
                "delivery_id": delivery_id,
                "outcome": "rejected",
                "codes": ["E90"],
                "message": f"ACE resubmit {n}",
            },
        )
        assert status == 200 and out["acks"][0]["effect"] == "conflict", out
    _, view = await gw.get(f"/v1/filings/{filing_id}")
    assert view["status"] == "acknowledged"
    [d] = view["deliveries"]
    assert (d["state"], d["attempts"], d["ack_conflict"]) == ("acknowledged", 1, True)
    _, listed = await gw.get("/v1/filings?ack_conflict=true")
    assert [f["id"] for f in listed["items"]] == [filing_id]
    assert len(receiver.requests) == 1
    async with gw.session.get(gw.url + "/metrics") as r:
        assert "edigw_ack_conflicts" in await r.text()
    status, err = await gw.post(f"/v1/filings/{filing_id}/resend", {"reason": ""})
    assert status == 422 and err["error"]["details"][0]["loc"] == "body.reason"
    status, _ = await gw.post(f"/v1/filings/{filing_id}/resend", {"reason": "CBP asked again"})
    assert status == 200

    async def sent_twice() -> bool:
        return len(receiver.requests) == 2

    await until(sent_twice, "the operator's resend reached the receiver")
    view = await gw.wait_for(filing_id, "delivered")
    assert view["deliveries"][0]["ack_conflict"] is False
    trail = await events(gw, filing_id)
    assert trail.count("delivery.ack_conflict") == 3
    assert trail.count("delivery.resent") == 1


async def test_an_accepted_ack_after_a_rejection_is_a_conflict(
    store_url: str, tmp_path: Path, receiver: Receiver, start_gateway: Any
) -> None:
    """rejected, then accepted: conflict flagged, the rejection stands; close resolves it."""
    gw = await start_gateway(http_config(tmp_path, receiver.url, store_url))
    _, body = await gw.post("/v1/filings", isf("ISF-REJ-1"))
    view = await gw.wait_for(body["id"], "delivered")
    delivery_id = view["deliveries"][0]["id"]
    await gw.post("/v1/acks", {"delivery_id": delivery_id, "outcome": "rejected", "codes": ["S1"]})
    _, out = await gw.post("/v1/acks", {"delivery_id": delivery_id, "outcome": "accepted"})
    assert out["acks"][0]["effect"] == "conflict"
    _, view = await gw.get(f"/v1/filings/{body['id']}")
    assert view["status"] == "rejected" and view["deliveries"][0]["ack_conflict"] is True
    status, _ = await gw.post(f"/v1/filings/{body['id']}/close-ack", {"reason": "seen in ACE"})
    assert status == 200
    _, view = await gw.get(f"/v1/filings/{body['id']}")
    assert view["status"] == "rejected" and view["deliveries"][0]["ack_conflict"] is False


# --- 3. message faults are not transport faults ---------------------------------------------


async def _accept_raw(gw: Any, reference: str, content_type: str) -> str:
    """A filing straight into the store, past intake (as one accepted before intake
    refused control characters would be)."""
    text = isf(reference, payload=f"ISF {reference}", content_type="text/plain")
    filing = normalize.normalize(
        models.FilingEvent.model_validate(text),
        filing_id=ids.new_id("fil"),
        received_at=gw.gateway.clock.now(),
    ).model_copy(update={"content_type": content_type})
    [result] = await gw.gateway.store.accept(
        [values.NewFiling(filing, ["ace"])], actor=values.SYSTEM, now=gw.gateway.clock.now()
    )
    gw.gateway.dispatcher.wake()
    return result.filing_id


async def test_uncarriable_messages_die_alone_and_never_open_the_breaker(
    store_url: str, tmp_path: Path, receiver: Receiver, start_gateway: Any
) -> None:
    """Six filings whose content type holds CR LF (the http adapter cannot build the
    request): each is dead at once as a message fault with one attempt; the breaker
    (threshold 5) stays closed and twenty healthy filings behind them are delivered."""
    data = http_config(
        tmp_path,
        receiver.url,
        store_url,
        breaker={"failure_threshold": 5, "cooldown": "1s"},
    )
    gw = await start_gateway(data)
    poisoned = [
        await _accept_raw(gw, f"ISF-POISON-{i}", "application/json\r\nX-Evil: 1") for i in range(6)
    ]
    healthy = []
    for i in range(20):
        _, body = await gw.post("/v1/filings", isf(f"ISF-OK-{i}"))
        healthy.append(body["id"])
    for filing_id in healthy:
        await gw.wait_for(filing_id, "delivered", timeout=30)
    for filing_id in poisoned:
        view = await gw.wait_for(filing_id, "dead", timeout=30)
        [d] = view["deliveries"]
        assert d["attempts"] == 1 and d["last_error"].startswith("message fault"), d
    _, adapters = await gw.get("/v1/adapters")
    [ace] = [a for a in adapters["adapters"] if a["name"] == "ace"]
    assert ace["breaker"]["state"] == "closed", ace
    assert len(receiver.requests) == 20
    assert not any("X-Evil" in r["headers"] for r in receiver.requests)


async def test_a_message_too_large_for_the_receiver_is_a_message_fault(
    store_url: str, tmp_path: Path, receiver: Receiver, start_gateway: Any
) -> None:
    """HTTP 413 from the receiver: dead at once as a message fault, one attempt, no retry."""
    receiver.script = [413]
    gw = await start_gateway(http_config(tmp_path, receiver.url, store_url))
    _, body = await gw.post("/v1/filings", isf("ISF-HUGE-1"))
    view = await gw.wait_for(body["id"], "dead")
    [d] = view["deliveries"]
    assert d["attempts"] == 1 and d["last_error"].startswith("message fault: HTTP 413"), d
    assert len(receiver.requests) == 1
