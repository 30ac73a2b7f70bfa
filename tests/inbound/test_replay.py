"""Replay of rejected inbound events after a fix (issue 21), on SQLite and PostgreSQL: a fixed
event becomes one filing however often it is replayed; a still-bad one stays, with the new
error; both audited with the token's name and the reason."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.conftest import base_config
from tests.inbound.conftest import TMS_SOURCE, booking
from tests.test_monitoring import OPS, VIEWER, auth_section

AUTH = {"Authorization": f"Bearer {OPS}"}


def drops_config(tmp_path, store_url: str, *, barge: bool) -> dict[str, Any]:
    """A directory source whose mapping knows mode `barge` only once fixed."""
    types = {**TMS_SOURCE["filing_types"], **({"barge": "isf"} if barge else {})}
    source = {**TMS_SOURCE, "filing_types": types, "kind": "directory",
              "directory": str(tmp_path / "drops"), "poll_interval": "50ms"}  # fmt: skip
    return base_config(
        tmp_path, gateway={"store": store_url}, sources={"legacy": source}, auth=auth_section()
    )


async def rejected_two(tmp_path, store_url, start_gateway) -> dict[str, str]:
    """Drop a barge booking (unknown mode) and one that also lacks its filer; both rejected."""
    drops = tmp_path / "drops"
    drops.mkdir()
    (drops / "barge.json").write_text(json.dumps(booking(7, mode="barge")))
    still = booking(8, mode="barge")
    del still["booking"]["filer"]
    (drops / "still.json").write_text(json.dumps(still))
    gw = await start_gateway(drops_config(tmp_path, store_url, barge=False))
    deadline = asyncio.get_running_loop().time() + 20
    items: list[dict[str, Any]] = []
    while len(items) < 2:
        assert asyncio.get_running_loop().time() < deadline, items
        await asyncio.sleep(0.05)
        _, listed = await gw.get("/v1/rejected-events", headers=AUTH)
        items = listed["items"]
    await gw.stop()
    return {i["origin"]: i["id"] for i in items}


async def test_a_fixed_event_replays_into_one_filing_even_when_replayed_twice(
    tmp_path, store_url, start_gateway
):
    """After the mapping learns `barge`, two replays at once make one filing; the event
    leaves the list; a third replay is a 404; the same file dropped again is a duplicate
    (the replay used the key the source gives it); the audit names the token and reason."""
    ids = await rejected_two(tmp_path, store_url, start_gateway)
    gw = await start_gateway(drops_config(tmp_path, store_url, barge=True))
    path = f"/v1/rejected-events/{ids['file:barge.json']}/replay"
    answers = await asyncio.gather(
        gw.post(path, {"reason": "mapping knows barge now"}, headers=AUTH),
        gw.post(path, {"reason": "mapping knows barge now"}, headers=AUTH),
    )
    ok = [body for status, body in answers if status == 200]
    assert ok, answers
    assert all(status in (200, 404) for status, _ in answers), answers
    assert ok[0]["outcome"] in ("accepted", "duplicate")
    [fid] = {f for body in ok for f in body["filing_ids"]}
    status, again = await gw.post(path, {"reason": "once more"}, headers=AUTH)
    assert status == 404, again
    # the source sends the same file again: keyed as the replay was, it is a duplicate
    (tmp_path / "drops" / "barge.json").write_text(json.dumps(booking(7, mode="barge")))
    deadline = asyncio.get_running_loop().time() + 20
    while not (tmp_path / "drops" / "done" / "barge.json").exists():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    _, listed = await gw.get("/v1/filings", headers=AUTH)
    assert [f["id"] for f in listed["items"]] == [fid]
    assert listed["items"][0]["reference"] == "MAEU7"
    _, rejected = await gw.get("/v1/rejected-events", headers=AUTH)
    assert [i["origin"] for i in rejected["items"]] == ["file:still.json"]
    _, hist = await gw.get(f"/v1/filings/{fid}/history", headers=AUTH)
    replayed = [e for e in hist["events"] if e["event"] == "event.replayed"]
    assert len(replayed) == 1
    assert replayed[0]["actor"] == "ops"
    assert replayed[0]["details"]["reason"] == "mapping knows barge now"
    accepted = [e for e in hist["events"] if e["event"] == "filing.accepted"]
    assert [e["actor"] for e in accepted] == ["ops"]


async def test_a_still_bad_event_stays_rejected_with_the_new_error(
    tmp_path, store_url, start_gateway
):
    """Once `barge` is known the booking without a filer is still bad: the row stays with
    the new error (naming the filer's field), no filing is made, the replay is audited."""
    ids = await rejected_two(tmp_path, store_url, start_gateway)
    gw = await start_gateway(drops_config(tmp_path, store_url, barge=True))
    status, body = await gw.post(
        f"/v1/rejected-events/{ids['file:still.json']}/replay",
        {"reason": "try again"},
        headers=AUTH,
    )
    assert status == 200, body
    assert body["outcome"] == "rejected" and body["filing_ids"] == []
    _, rejected = await gw.get("/v1/rejected-events", headers=AUTH)
    still = next(i for i in rejected["items"] if i["origin"] == "file:still.json")
    assert "barge" not in still["reason"] and "filer" in still["reason"], still
    assert still["reason"] == body["error"]["message"]
    _, listed = await gw.get("/v1/filings", headers=AUTH)
    assert listed["items"] == []
    audit = [r async for r in gw.gateway.store.audit_rows()]
    failed = [r for r in audit if r.event == "event.replay_failed"]
    assert [(r.actor, r.details["reason"]) for r in failed] == [("ops", "try again")]


async def test_replay_needs_operate_and_a_reason(tmp_path, store_url, start_gateway):
    """A read-only token gets 403; a blank reason is a 422 naming `body.reason`; an unknown
    id is a 404; nothing changes."""
    ids = await rejected_two(tmp_path, store_url, start_gateway)
    gw = await start_gateway(drops_config(tmp_path, store_url, barge=True))
    path = f"/v1/rejected-events/{ids['file:barge.json']}/replay"
    status, _ = await gw.post(path, {"reason": "x"}, headers={"Authorization": f"Bearer {VIEWER}"})
    assert status == 403
    status, body = await gw.post(path, {"reason": "  "}, headers=AUTH)
    assert status == 422 and body["error"]["details"][0]["loc"] == "body.reason"
    status, _ = await gw.post("/v1/rejected-events/rej_nope/replay", {"reason": "x"}, headers=AUTH)
    assert status == 404
    _, rejected = await gw.get("/v1/rejected-events", headers=AUTH)
    assert len(rejected["items"]) == 2


async def test_rejected_list_and_replay_from_the_cli(tmp_path, store_url, start_gateway, capsys):
    """`rejected list` shows both; `rejected replay` files the fixed one (exit 0) and says
    the still-bad one is still rejected (exit 1); without --reason it is a usage error."""
    from tests.test_cli_ops import cli_runner

    ids = await rejected_two(tmp_path, store_url, start_gateway)
    gw = await start_gateway(drops_config(tmp_path, store_url, barge=True))
    run = cli_runner(gw, capsys)
    code, out, _ = await run("rejected", "list", "--token", OPS)
    assert code == 0 and ids["file:barge.json"] in out and ids["file:still.json"] in out
    code, out, _ = await run(
        "rejected", "replay", ids["file:barge.json"], "--reason", "barge mapped", "--token", OPS
    )
    assert code == 0 and "accepted: fil_" in out
    code, out, _ = await run(
        "rejected", "replay", ids["file:still.json"], "--reason", "retry", "--token", OPS, "--json"
    )
    assert code == 1 and json.loads(out)["outcome"] == "rejected"
    code, out, _ = await run("rejected", "list", "--json", "--token", OPS)
    assert [i["id"] for i in json.loads(out)["items"]] == [ids["file:still.json"]]
