"""X12 codec: envelopes with store-allocated control numbers; 997/TA1 correlate by them."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from gateway.encoding import x12
from gateway.store.sqlite import SqliteStore
from tests.conftest import base_config, example

SET_309 = "ST*309*0001~M10*MAEU*O*US*MAERSK KENTUCKY*001~P4*4601*20261203~SE*4*0001~"
NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


def x12_config(tmp_path):
    data = base_config(tmp_path)
    data["adapters"]["outbox"].update(
        codec="x12", x12_sender="ZZ:MAEU", x12_receiver="ZZ:CBPACE", x12_functional_id="SO"
    )
    return data


def filing(**changes):
    return example("manifest.ocean", payload=SET_309 + SET_309.replace("0001", "0002"), **changes)


async def _sent(gw, **changes):
    _, body = await gw.post("/v1/filings", filing(**changes))
    view = await gw.wait_for(body["id"], "delivered")
    d = view["deliveries"][0]
    text = Path(d["receipt"]["detail"]["path"]).read_text()
    return view["id"], d, text


async def test_x12_codec_envelopes_with_allocated_control_numbers(tmp_path, start_gateway):
    """Counts match; ICN/GCN go 1, 2 per pair in cert, and start apart for production (P)."""
    gw = await start_gateway(x12_config(tmp_path))
    seen = []
    for env in ("cert", "cert", "production"):
        _, d, text = await _sent(gw, environment=env, reference=f"BL-{len(seen)}")
        _, segs = x12.split_segments(text)
        isa, gs = segs[0], segs[1]
        assert len(text.split("~")[0]) + 1 == x12.ISA_LENGTH
        assert (isa[6].strip(), isa[8].strip(), gs[1]) == ("MAEU", "CBPACE", "SO")
        assert [s for s in segs if s[0] == "SE"] == [["SE", "4", "0001"], ["SE", "4", "0002"]]
        assert segs[-2] == ["GE", "2", gs[6]] and segs[-1] == ["IEA", "1", isa[13]]
        assert d["receipt"]["x12"] == {
            "interchange_control": int(isa[13]),
            "group_control": int(gs[6]),
        }
        seen.append((isa[15], int(isa[13]), int(gs[6])))
    assert seen == [("T", 1, 1), ("T", 2, 2), ("P", 1, 1)]


async def test_a_payload_without_transaction_sets_is_dead_not_retried(tmp_path, start_gateway):
    """The x12 codec refuses a payload with no ST…SE set: dead at once, saying why."""
    gw = await start_gateway(x12_config(tmp_path))
    _, body = await gw.post("/v1/filings", example("manifest.ocean", payload="HELLO~"))
    view = await gw.wait_for(body["id"], "dead")
    assert "codec x12" in view["deliveries"][0]["last_error"]


async def test_200_concurrent_allocations_on_two_connections_are_distinct(tmp_path):
    """Two stores on one file, 200 allocations at once → exactly 1…200; a reopen continues."""
    path = tmp_path / "gw.db"
    a, b = SqliteStore(path), SqliteStore(path)
    await a.open()
    await a.migrate()
    await b.open()
    try:

        async def take(store, i):
            c = await store.allocate_controls(
                sender="ZZ:MAEU",
                receiver="ZZ:CBPACE",
                usage="T",
                delivery_id=f"dlv_{i}",
                filing_id=f"fil_{i}",
                attempt=1,
                now=NOW,
            )
            return c.interchange, c.group

        got = await asyncio.gather(*(take(a if i % 2 else b, i) for i in range(200)))
        assert sorted(n for n, _ in got) == list(range(1, 201))
        assert sorted(g for _, g in got) == list(range(1, 201))
    finally:
        await a.close()
        await b.close()
    again = SqliteStore(path)
    await again.open()
    try:
        c = await again.allocate_controls(
            sender="ZZ:MAEU",
            receiver="ZZ:CBPACE",
            usage="T",
            delivery_id="d",
            filing_id="f",
            attempt=1,
            now=NOW,
        )
        assert c.interchange == 201
    finally:
        await again.close()
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT interchange_control FROM x12_allocations ORDER BY seq"
        ).fetchall()
    assert len(rows) == 201  # every number is tied to the delivery it went to: gaps show


async def test_control_numbers_wrap_after_nine_nines(tmp_path):
    """999999999 is followed by 1."""
    store = SqliteStore(tmp_path / "gw.db")
    await store.open()
    await store.migrate()
    try:
        kw = dict(
            sender="ZZ:A",
            receiver="ZZ:B",
            usage="P",
            delivery_id="d",
            filing_id="f",
            attempt=1,
            now=NOW,
        )
        await store.allocate_controls(**kw)
        with sqlite3.connect(tmp_path / "gw.db") as conn:
            conn.execute("UPDATE x12_counters SET last_interchange = 999999998")
        assert (await store.allocate_controls(**kw)).interchange == 999_999_999
        assert (await store.allocate_controls(**kw)).interchange == 1
    finally:
        await store.close()


def _isa(icn: int) -> str:
    return (
        "ISA*00*          *00*          *ZZ*CBPACE         *ZZ*MAEU           *261127*"
        f"0931*U*00401*{icn:09d}*0*T*>~"
    )


async def test_997_with_ak5_r_rejects_the_right_delivery(tmp_path, start_gateway):
    """Two interchanges out; a 997 rejecting group 2 rejects the second only; TA1 accepts #1."""
    gw = await start_gateway(x12_config(tmp_path))
    first, _, _ = await _sent(gw, reference="BL-A")
    second, d2, _ = await _sent(gw, reference="BL-B")
    assert d2["receipt"]["x12"]["group_control"] == 2
    doc997 = (
        _isa(900) + "GS*FA*CBPACE*MAEU*20261127*0931*900*X*004010~ST*997*0001~AK1*SO*2~"
        "AK2*309*0001~AK3*M10*2**8~AK5*R*5~AK9*R*1*1*0~SE*7*0001~GE*1*900~IEA*1*000000900~"
    )
    async with gw.session.post(
        gw.url + "/v1/acks", data=doc997, headers={"Content-Type": "application/edi-x12"}
    ) as r:
        assert r.status == 200
        out = await r.json()
    assert out["acks"][0]["delivery_id"] == d2["id"]
    view = await gw.wait_for(second, "rejected")
    assert view["deliveries"][0]["ack"]["codes"] == ["AK3:8", "5"]
    _, v1 = await gw.get(f"/v1/filings/{first}")
    assert v1["status"] == "delivered"
    ta1 = _isa(901) + "TA1*000000001*261127*0930*A*000~IEA*0*000000901~"
    async with gw.session.post(
        gw.url + "/v1/acks", data=ta1, headers={"Content-Type": "application/edi-x12"}
    ) as r:
        assert r.status == 200
    await gw.wait_for(first, "acknowledged")


async def test_posted_997_with_a_bom_and_crlf_correlates_and_its_envelope_fault_is_listed(
    tmp_path, start_gateway
):
    """POST /v1/acks: BOM + CR LF no longer 422; an IEA02 ≠ ISA13 is listed, the answer used."""
    gw = await start_gateway(x12_config(tmp_path))
    filing_id, d, _ = await _sent(gw, reference="BL-BOM")
    group = d["receipt"]["x12"]["group_control"]
    doc997 = (
        _isa(902) + f"GS*FA*CBPACE*MAEU*20261127*0931*902*X*004010~ST*997*0001~AK1*SO*{group}~"
        "AK2*309*0001~AK5*A~AK9*A*1*1*1~SE*6*0001~GE*1*902~IEA*1*000000903~"
    ).replace("~", "~\r\n")
    async with gw.session.post(
        gw.url + "/v1/acks",
        data=b"\xef\xbb\xbf" + doc997.encode(),
        headers={"Content-Type": "application/edi-x12"},
    ) as r:
        assert r.status == 200, await r.text()
        out = await r.json()
    assert out["acks"][0]["delivery_id"] == d["id"]
    await gw.wait_for(filing_id, "acknowledged")
    _, shown = await gw.get("/v1/rejected-events?source=acks")
    [item] = shown["items"]
    assert item["origin"].startswith("api:")
    assert [(x["loc"], x["code"]) for x in item["details"]] == [("segment 10 (IEA)", "001")]
