"""Acks dropped in the filedrop inbox: acknowledged, rejected with codes, unreadable."""

from __future__ import annotations

from tests.acks.conftest import drop, eventually, inbox_config
from tests.conftest import example


async def _delivered(gw):
    _, body = await gw.post("/v1/filings", example())
    view = await gw.wait_for(body["id"], "delivered")
    return view["id"], view["deliveries"][0]["id"]


async def test_ack_file_in_the_inbox_acknowledges_the_delivery(tmp_path, start_gateway):
    """A JSON ack file naming the delivery → acknowledged; the file moves to processed/."""
    gw = await start_gateway(inbox_config(tmp_path))
    filing_id, delivery_id = await _delivered(gw)
    drop(tmp_path / "inbox", "ack-1.json", {"delivery_id": delivery_id, "outcome": "accepted"})
    view = await gw.wait_for(filing_id, "acknowledged")
    assert view["deliveries"][0]["ack"]["outcome"] == "accepted"
    assert (tmp_path / "inbox/processed/ack-1.json").exists()
    assert not (tmp_path / "inbox/ack-1.json").exists()
    _, hist = await gw.get(f"/v1/filings/{filing_id}/history")
    events = [e["event"] for e in hist["events"]]
    assert events[-2:] == ["ack.received", "delivery.acknowledged"]


async def test_rejection_file_rejects_with_codes_visible_on_the_filing(tmp_path, start_gateway):
    """A rejection with codes → rejected; GET /v1/filings/{id} shows the codes and message."""
    gw = await start_gateway(inbox_config(tmp_path))
    filing_id, delivery_id = await _delivered(gw)
    drop(
        tmp_path / "inbox",
        "rej.json",
        {
            "delivery_id": delivery_id,
            "outcome": "rejected",
            "codes": ["S01", "S17"],
            "message": "IMPORTER NOT ON FILE",
        },
    )
    view = await gw.wait_for(filing_id, "rejected")
    d = view["deliveries"][0]
    assert d["state"] == "rejected"
    assert d["ack"]["codes"] == ["S01", "S17"]
    assert d["ack"]["message"] == "IMPORTER NOT ON FILE"
    assert "S01, S17" in d["last_error"]


async def test_unreadable_ack_file_is_set_aside_and_audited(tmp_path, start_gateway):
    """A file that is neither JSON nor X12 goes to failed/, kept, with an audit row."""
    gw = await start_gateway(inbox_config(tmp_path))
    drop(tmp_path / "inbox", "junk.txt", "this is not an ack")
    await eventually(lambda: (tmp_path / "inbox/failed/junk.txt").exists())
    rows = [r async for r in gw.gateway.store.audit_rows()]
    assert any(r.event == "ack.unreadable" and r.details["document"] == "junk.txt" for r in rows)
