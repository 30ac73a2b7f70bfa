"""POST /v1/acks: correlation, unmatched, duplicates, resubmit codes, unsolicited, ordering."""

from __future__ import annotations

import hashlib

from tests.acks.conftest import eventually, inbox_config
from tests.conftest import base_config, example


async def _delivered(gw, **changes):
    _, body = await gw.post("/v1/filings", example(**changes))
    view = await gw.wait_for(body["id"], "delivered")
    return view["id"], view["deliveries"][0]["id"]


async def test_unmatched_ack_is_kept_and_listed(tmp_path, start_gateway):
    """An ack for an unknown delivery is stored, not dropped, and listed by matched=false."""
    gw = await start_gateway(base_config(tmp_path))
    s, body = await gw.post(
        "/v1/acks", {"delivery_id": "dlv_NOPE", "outcome": "accepted", "message": "late"}
    )
    assert s == 200 and body["unmatched"] == 1
    assert body["acks"][0]["effect"] == "unmatched"
    _, listed = await gw.get("/v1/acks", params={"matched": "false"})
    assert [a["id"] for a in listed["items"]] == [body["acks"][0]["id"]]
    assert listed["items"][0]["ack"]["message"] == "late"
    _, matched = await gw.get("/v1/acks", params={"matched": "true"})
    assert matched["items"] == []


async def test_duplicate_ack_is_idempotent(tmp_path, start_gateway):
    """The same ack twice: one stored row, one audit row, the second says duplicate."""
    gw = await start_gateway(base_config(tmp_path))
    filing_id, delivery_id = await _delivered(gw)
    ack = {"delivery_id": delivery_id, "outcome": "accepted", "codes": []}
    _, first = await gw.post("/v1/acks", ack)
    _, second = await gw.post("/v1/acks", ack)
    assert first["acks"][0]["duplicate"] is False and second["acks"][0]["duplicate"] is True
    assert first["acks"][0]["id"] == second["acks"][0]["id"]
    _, listed = await gw.get(f"/v1/filings/{filing_id}/acks")
    assert len(listed["items"]) == 1
    _, hist = await gw.get(f"/v1/filings/{filing_id}/history")
    assert [e["event"] for e in hist["events"]].count("ack.received") == 1


async def test_ack_by_filing_type_and_reference(tmp_path, start_gateway):
    """{"filing_type", "reference"} in place of delivery_id finds the waiting delivery."""
    gw = await start_gateway(base_config(tmp_path))
    filing_id, _ = await _delivered(gw, reference="ISF-REF-1")
    s, body = await gw.post(
        "/v1/acks", {"filing_type": "isf", "reference": "ISF-REF-1", "outcome": "accepted"}
    )
    assert s == 200 and body["acks"][0]["filing_id"] == filing_id
    await gw.wait_for(filing_id, "acknowledged")


async def test_invalid_acks_are_422_or_400(tmp_path, start_gateway):
    """No correlation, no outcome, bad JSON, bad X12: refused, nothing stored."""
    gw = await start_gateway(base_config(tmp_path))
    assert (await gw.post("/v1/acks", {"outcome": "accepted"}))[0] == 422
    assert (await gw.post("/v1/acks", {"delivery_id": "dlv_X"}))[0] == 422
    async with gw.session.post(gw.url + "/v1/acks", data=b"{nope") as r:
        assert r.status == 400
    async with gw.session.post(
        gw.url + "/v1/acks", data=b"ISA*short~", headers={"Content-Type": "application/edi-x12"}
    ) as r:
        assert r.status == 422 and (await r.json())["error"]["code"] == "invalid_x12"
    assert (await gw.get("/v1/acks"))[1]["items"] == []


async def test_infrastructure_reject_code_resends_automatically(tmp_path, start_gateway):
    """A reject with a resubmit code (E90) goes out again by itself, then an accept lands."""
    gw = await start_gateway(base_config(tmp_path, acks={"resubmit_codes": ["E90"]}))
    filing_id, delivery_id = await _delivered(gw)
    _, body = await gw.post(
        "/v1/acks",
        {"delivery_id": delivery_id, "outcome": "rejected", "codes": ["E90"], "message": "ACE"},
    )
    assert body["acks"][0]["effect"] == "resend_scheduled"

    async def resent():
        _, v = await gw.get(f"/v1/filings/{filing_id}")
        d = v["deliveries"][0]
        return d["state"] == "delivered" and d["attempts"] == 2

    await eventually(resent)
    await gw.post("/v1/acks", {"delivery_id": delivery_id, "outcome": "accepted"})
    view = await gw.wait_for(filing_id, "acknowledged")
    assert view["deliveries"][0]["id"] == delivery_id


async def test_other_reject_codes_are_final(tmp_path, start_gateway):
    """A reject whose code is not a resubmit code goes to rejected and is not resent."""
    gw = await start_gateway(base_config(tmp_path, acks={"resubmit_codes": ["E90"]}))
    filing_id, delivery_id = await _delivered(gw)
    await gw.post("/v1/acks", {"delivery_id": delivery_id, "outcome": "rejected", "codes": ["S01"]})
    view = await gw.wait_for(filing_id, "rejected")
    assert view["deliveries"][0]["attempts"] == 1


async def test_unsolicited_message_is_history_and_keeps_the_final_state(tmp_path, start_gateway):
    """A status advisory by reference attaches to the filing without changing its status."""
    gw = await start_gateway(base_config(tmp_path))
    filing_id, delivery_id = await _delivered(gw, reference="ISF-77")
    await gw.post("/v1/acks", {"delivery_id": delivery_id, "outcome": "accepted"})
    await gw.wait_for(filing_id, "acknowledged")
    _, body = await gw.post(
        "/v1/acks",
        {
            "filing_type": "isf",
            "reference": "ISF-77",
            "unsolicited": True,
            "outcome": "rejected",
            "codes": ["ISF-ADV-12"],
            "message": "ISF advisory: late filing",
        },
    )
    assert body["acks"][0]["effect"] == "history" and body["acks"][0]["filing_id"] == filing_id
    _, view = await gw.get(f"/v1/filings/{filing_id}")
    assert view["status"] == "acknowledged"
    _, listed = await gw.get(f"/v1/filings/{filing_id}/acks")
    assert listed["items"][0]["ack"]["message"] == "ISF advisory: late filing"


async def test_order_until_acknowledged_holds_the_next_delivery(tmp_path, start_gateway):
    """With order_until = acknowledged an amendment is not sent while its original waits for
    its ack, though a later filing on another key goes out; the ack releases it."""
    routes = [{"adapters": ["outbox"], "order_until": "acknowledged"}]
    gw = await start_gateway(base_config(tmp_path, routes=routes))
    first, first_dlv = await _delivered(gw, ordering_key="BL-1")
    _, body = await gw.post("/v1/filings", example(ordering_key="BL-1", reference="ISF-AMD"))
    second = body["id"]
    # a later filing on another key: claims go in acceptance order, so once it is delivered
    # the dispatcher has passed over the amendment (or claimed it with it, were it free)
    _, marker = await _delivered(gw, ordering_key="BL-OTHER", reference="ISF-LATER")
    _, view = await gw.get(f"/v1/filings/{second}")
    assert view["status"] == "pending", view
    assert view["deliveries"][0]["attempts"] == 0
    sent = {p.stem for p in (tmp_path / "outbox").glob("*.json")}
    assert sent == {first_dlv, marker}  # the amendment's file was never written
    await gw.post("/v1/acks", {"delivery_id": first_dlv, "outcome": "accepted"})
    view = await gw.wait_for(second, "delivered")
    assert (tmp_path / "outbox" / f"{view['deliveries'][0]['id']}.json").exists()
    await gw.wait_for(first, "acknowledged")


async def test_rejected_predecessor_blocks_its_ordering_key(tmp_path, start_gateway):
    """A rejected original blocks the held amendment, as a dead one would."""
    routes = [{"adapters": ["outbox"], "order_until": "acknowledged"}]
    gw = await start_gateway(base_config(tmp_path, routes=routes))
    _, first_dlv = await _delivered(gw, ordering_key="BL-2")
    _, body = await gw.post("/v1/filings", example(ordering_key="BL-2", reference="ISF-AMD2"))
    await gw.post("/v1/acks", {"delivery_id": first_dlv, "outcome": "rejected", "codes": ["X"]})
    await gw.wait_for(body["id"], "blocked")


def _ops_config(tmp_path, **sections):
    def sha(s: str) -> str:
        return hashlib.sha256(s.encode()).hexdigest()

    return inbox_config(
        tmp_path,
        auth={
            "mode": "token",
            "tokens": {
                "tms": {"sha256": sha("tms-secret"), "scopes": ["submit", "read"]},
                "alice": {"sha256": sha("alice-secret"), "scopes": ["read", "operate"]},
            },
        },
        **sections,
    )


async def test_missing_ack_is_flagged_overdue_and_an_operator_resends(tmp_path, start_gateway):
    """Past ack_within: ack_overdue (filter + field), never resent by itself; resend audited."""
    routes = [{"adapters": ["outbox"], "ack_within": "300ms"}]
    gw = await start_gateway(_ops_config(tmp_path, routes=routes))
    tms = {"Authorization": "Bearer tms-secret"}
    ops = {"Authorization": "Bearer alice-secret"}
    _, body = await gw.post("/v1/filings", example(), headers=tms)
    filing_id = body["id"]

    async def overdue():
        _, page = await gw.get("/v1/filings", params={"ack_overdue": "true"}, headers=ops)
        return page["items"]

    [item] = await eventually(overdue)
    d = item["deliveries"][0]
    assert d["ack_overdue"] is True and d["ack_due_at"] is not None and d["attempts"] == 1
    s, _ = await gw.post(f"/v1/filings/{filing_id}/resend", {"reason": "no 997"}, headers=tms)
    assert s == 403
    s, out = await gw.post(f"/v1/filings/{filing_id}/resend", {"reason": "no 997"}, headers=ops)
    assert s == 200 and out["resent"] == [d["id"]]

    async def resent():
        _, v = await gw.get(f"/v1/filings/{filing_id}", headers=ops)
        return v["deliveries"][0]["attempts"] == 2 and v["status"] == "delivered"

    await eventually(resent)
    _, hist = await gw.get(f"/v1/filings/{filing_id}/history", headers=ops)
    resend = [e for e in hist["events"] if e["event"] == "delivery.resent"]
    assert resend[0]["actor"] == "alice" and resend[0]["details"]["reason"] == "no 997"
    assert any(e["event"] == "delivery.ack_overdue" for e in hist["events"])
    s, out = await gw.post(f"/v1/filings/{filing_id}/close-ack", {"reason": "seen"}, headers=ops)
    assert s == 200 and out["filing"]["deliveries"][0]["ack"]["closed_by"] == "alice"
    _, hist = await gw.get(f"/v1/filings/{filing_id}/history", headers=ops)
    closed = [e for e in hist["events"] if e["event"] == "delivery.ack_closed"]
    assert closed[0]["actor"] == "alice"


async def test_ack_deadline_pauses_while_the_adapter_is_in_an_outage(tmp_path, start_gateway):
    """An announced outage stops the ack_within clock: a later delivery on an adapter without
    an outage goes overdue first; removing the outage lets the held one go overdue."""
    data = base_config(
        tmp_path,
        routes=[
            {"filer_codes": ["XYZ"], "adapters": ["outbox"], "ack_within": "2s"},
            {"filer_codes": ["MRK"], "adapters": ["outbox2"], "ack_within": "2s"},
        ],
    )
    data["adapters"]["outbox2"] = {
        "type": "filedrop",
        "directory": str(tmp_path / "outbox2"),
        "fsync": False,
    }
    data["acks"] = {"overdue_scan": "100ms"}
    gw = await start_gateway(data)
    filing_id, _ = await _delivered(gw)
    status, outage = await gw.post("/v1/outages", {"adapter": "outbox", "reason": "ACE down"})
    assert status in (200, 201)
    await gw.post("/v1/filings", example(reference="wake-the-gate"))  # gate is re-read per claim

    async def gate_shut():
        _, body = await gw.get("/v1/adapters")
        [outbox] = [a for a in body["adapters"] if a["name"] == "outbox"]
        return outbox["gate"] and outbox["gate"]["state"] != "open"

    await eventually(gate_shut)
    # delivered after the held one, with the same ack_within: its deadline is later, so
    # once it is flagged the sweep has passed the held one's unpaused deadline too
    marker, _ = await _delivered(gw, filer_code="MRK", reference="MARKER")

    async def flagged(fid):
        _, v = await gw.get(f"/v1/filings/{fid}")
        return v["deliveries"][0]["ack_overdue"]

    await eventually(lambda: flagged(marker), timeout=15)
    _, view = await gw.get(f"/v1/filings/{filing_id}")
    assert view["deliveries"][0]["ack_overdue"] is False, view["deliveries"][0]
    async with gw.session.delete(f"{gw.url}/v1/outages/{outage['id']}") as r:
        assert r.status == 200
    await eventually(lambda: flagged(filing_id), timeout=15)
