"""Acks dropped in the filedrop inbox: acknowledged, rejected with codes, unreadable; X12
files as VANs deliver them (several interchanges, a BOM, CR LF, envelope faults)."""

from __future__ import annotations

from pathlib import Path

from tests.acks.conftest import drop, eventually, inbox_config
from tests.conftest import example

REAL_997 = Path(__file__).parent.parent / "data" / "x12" / "pyx12_834_lui_id.997"
SET_309 = "ST*309*0001~M10*MAEU*O*US*MAERSK KENTUCKY*001~P4*4601*20261203~SE*4*0001~"


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
    # the file moves once the adapter hears "stored", just after the ack's transaction
    await eventually(lambda: (tmp_path / "inbox/processed/ack-1.json").exists())
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
    _, shown = await gw.get("/v1/rejected-events?source=acks")
    assert [(i["origin"], i["body"]) for i in shown["items"]] == [
        ("outbox:junk.txt", "this is not an ack")
    ]


def x12_inbox_config(tmp_path):
    data = inbox_config(tmp_path)
    data["adapters"]["outbox"].update(
        codec="x12", x12_sender="ZZ:MAEU", x12_receiver="ZZ:CBPACE", x12_functional_id="SO"
    )
    return data


async def _sent_x12(gw):
    payload = SET_309 + SET_309.replace("0001", "0002")
    _, body = await gw.post("/v1/filings", example("manifest.ocean", payload=payload))
    view = await gw.wait_for(body["id"], "delivered")
    return view["id"], view["deliveries"][0]["receipt"]["x12"]["group_control"]


def cbp_997(group: int, status: str = "A", *, se_count: str = "6", iea: str = "000000900") -> str:
    """CBP's 997 for our group as a VAN hands it on: `|` elements, CR LF after each segment."""
    segments = [
        "ISA|00|          |00|          |ZZ|CBPACE         |ZZ|MAEU           |261127|0931|"
        "U|00401|000000900|0|T|:",
        "GS|FA|CBPACE|MAEU|20261127|0931|900|X|004010",
        "ST|997|0001",
        f"AK1|SO|{group}",
        "AK2|309|0001",
        f"AK5|{status}" + ("|5" if status == "R" else ""),
        f"AK9|{status}|1|1|{0 if status == 'R' else 1}",
        f"SE|{se_count}|0001",
        "GE|1|900",
        f"IEA|1|{iea}",
    ]
    return "\r\n".join(segments) + "\r\n"


async def test_van_batch_with_a_bom_is_read_interchange_by_interchange(tmp_path, start_gateway):
    """BOM + another partner's real 997 + CBP's (`|`, CR LF): CBP's acknowledges the filing."""
    gw = await start_gateway(x12_inbox_config(tmp_path))
    filing_id, group = await _sent_x12(gw)
    batch = "\ufeff" + REAL_997.read_text() + cbp_997(group)
    drop(tmp_path / "inbox", "van-batch.x12", batch)
    view = await gw.wait_for(filing_id, "acknowledged")
    assert view["deliveries"][0]["ack"]["outcome"] == "accepted"
    await eventually(lambda: (tmp_path / "inbox/processed/van-batch.x12").exists())
    _, unmatched = await gw.get("/v1/acks?matched=false")
    assert [(i["ack"]["x12_receiver"], i["ack"]["usage"]) for i in unmatched["items"]] == [
        ("ZZ:00GR", "P")  # the other partner's answer, from its own ISA
    ]


async def test_ack_file_with_envelope_errors_is_kept_shown_and_still_correlates(
    tmp_path, start_gateway
):
    """IEA02 ≠ ISA13 and SE01 580: the rejection still applies; the faults are listed."""
    gw = await start_gateway(x12_inbox_config(tmp_path))
    filing_id, group = await _sent_x12(gw)
    drop(tmp_path / "inbox", "faulty.997", cbp_997(group, "R", se_count="580", iea="000000901"))
    view = await gw.wait_for(filing_id, "rejected")
    assert view["deliveries"][0]["ack"]["codes"] == ["5"]
    await eventually(lambda: (tmp_path / "inbox/processed/faulty.997").exists())
    _, shown = await gw.get("/v1/rejected-events?source=acks")
    [item] = shown["items"]
    assert item["origin"] == "outbox:faulty.997"
    assert [(d["loc"], d["code"]) for d in item["details"]] == [
        ("segment 8 (SE)", "4"),
        ("segment 10 (IEA)", "001"),
    ]
    assert item["body"] == cbp_997(group, "R", se_count="580", iea="000000901")
