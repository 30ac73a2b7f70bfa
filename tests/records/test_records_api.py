"""``/v1/records`` on a gateway running on loopback (issue 20): search over live and archive
with one cursor, a record archived by the gateway's own mover, restore, and 422 naming a
bad parameter."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from gateway.clock import ManualClock
from tests.conftest import base_config, example


def records_config(tmp_path: Path) -> dict[str, Any]:
    # the mover's own rounds wait an hour: the test runs them when it wants
    section = {"enabled": True, "dir": str(tmp_path / "records"), "interval": "1h"}
    return base_config(tmp_path, records=section)


async def test_search_show_and_restore_over_http(tmp_path: Path, start_gateway: Any) -> None:
    clock = ManualClock()
    gw = await start_gateway(records_config(tmp_path), clock=clock)
    ids = []
    for ref in ("API-1", "API-2", "API-3"):
        status, body = await gw.post("/v1/filings", example(reference=ref))
        assert status == 202
        ids.append(body["id"])
    for fid in ids:
        await gw.wait_for(fid, "delivered")
    clock.advance(timedelta(days=30).total_seconds())
    assert await gw.gateway.mover.round() == 3
    status, body = await gw.post("/v1/filings", example(reference="API-4"))
    ids.append(body["id"])
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        path = "/v1/records?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page = await gw.get(path)
        assert status == 200 and len(page["items"]) <= 2
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(i["id"] for i in seen) == sorted(ids)
    assert {i["where"] for i in seen if i["id"] != ids[3]} == {"archive"}
    status, page = await gw.get("/v1/records?reference=api-2")
    assert [i["id"] for i in page["items"]] == [ids[1]]
    status, rec = await gw.get(f"/v1/records/{ids[1]}")
    assert status == 200 and rec["where"] == "archive"
    assert rec["record"]["filing"]["reference"] == "API-2"
    assert (await gw.get("/v1/records/fil_unknown"))[0] == 404
    assert (await gw.post(f"/v1/records/{ids[1]}/restore", {}))[0] == 422
    status, body = await gw.post(f"/v1/records/{ids[1]}/restore", {"reason": "CBP asked"})
    assert status == 200 and body["restored_from"] == rec["segment"]
    assert (await gw.get(f"/v1/filings/{ids[1]}"))[0] == 200
    assert (await gw.post(f"/v1/records/{ids[1]}/restore", {"reason": "again"}))[0] == 409


async def test_a_bad_parameter_is_a_422_naming_it(tmp_path: Path, start_gateway: Any) -> None:
    gw = await start_gateway(records_config(tmp_path), clock=ManualClock())
    for query, loc in (
        ("limit=0", "limit"),
        ("received_from=yesterday", "received_from"),
        ("colour=red", "colour"),
        ("cursor=bm9wZQ", "cursor"),
        ("reference=%20-%20", "reference"),
    ):
        status, body = await gw.get(f"/v1/records?{query}")
        assert status == 422, query
        assert loc in str(body["error"]["details"]), body
    status, spec = await gw.get("/openapi.json")
    assert {"/v1/records", "/v1/records/{id}", "/v1/records/{id}/restore"} <= set(spec["paths"])
