"""Pause and resume, and per-type window actions (issue 21), end to end: a real gateway on
loopback, a real SQLite file, a ManualClock; the dispatcher is driven by its own cycles."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import timedelta
from typing import Any

import pytest

from gateway import models
from gateway.cli import main as cli
from tests.store.conftest import fresh_schema

from .conftest import WEDNESDAY_NOON, event, outage_config


def outbox_count(tmp_path: Any) -> int:
    d = tmp_path / "outbox"
    if not d.exists():
        return 0
    return sum(1 for p in d.rglob("*") if p.is_file() and not p.name.startswith("."))


def audit(tmp_path: Any, prefix: str) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    """(event, actor, filing id, details) of the audit rows whose event starts with prefix."""
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        rows = db.execute(
            "SELECT event, actor, filing_id, details FROM audit WHERE event LIKE ? ORDER BY seq",
            (prefix + "%",),
        ).fetchall()
    return [(e, a, f, json.loads(d)) for e, a, f, d in rows]


async def until(check: Any, live: Any, timeout: float = 10.0) -> None:
    """Wait (dispatcher cycles, no wall-time assumption beyond a generous cap) for check()."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        live.gateway.dispatcher.wake()
        await asyncio.sleep(0.005)


async def test_a_paused_type_waits_spends_no_attempt_and_holds_its_key(tmp_path, live_gateway):
    """Paused in-bond filings are not sent and spend no attempt; a later ISF of the same
    ordering key waits behind one; another key goes. Resume sends them, in key order."""
    live = await live_gateway(outage_config(tmp_path))
    status, pause = await live.call(
        "POST", "/v1/pauses", {"filing_type": "inbond", "reason": "CSMS: hold in-bond"}
    )
    assert status == 201 and pause["id"].startswith("pau_")
    _, inb = await live.call(
        "POST", "/v1/filings", event("INB-1", filing_type="inbond", ordering_key="K")
    )
    _, isf = await live.call("POST", "/v1/filings", event("ISF-1", ordering_key="K"))
    _, other = await live.call("POST", "/v1/filings", event("ISF-2"))
    await live.wait_status(other["id"], "delivered")
    await live.advance(3600)
    for f in (inb, isf):
        _, body = await live.call("GET", f"/v1/filings/{f['id']}")
        assert [(d["state"], d["attempts"]) for d in body["deliveries"]] == [("pending", 0)]
    # visible everywhere: /v1/adapters, /readyz, /metrics, the dashboard
    _, adapters = await live.call("GET", "/v1/adapters")
    [outbox] = adapters["adapters"]
    assert [p["id"] for p in outbox["paused"]] == [pause["id"]]
    _, ready = await live.call("GET", "/readyz")
    assert ready["status"] == "ready"
    assert ready["held"]["outbox"]["inbond"].startswith(f"paused ({pause['id']})")
    async with live.session.get(live.url + "/metrics") as r:
        text = await r.text()
    assert 'edigw_paused{adapter="outbox",filing_type="inbond"} 1.0' in text
    async with live.session.get(live.url + "/ui/panels") as r:
        html = await r.text()
    assert f'data-resume="{pause["id"]}"' in html and "CSMS: hold in-bond" in html
    async with live.session.get(live.url + "/") as r:
        page = await r.text()
    assert 'id="pause-form"' in page and "<option>inbond</option>" in page

    status, resumed = await live.call("DELETE", f"/v1/pauses/{pause['id']}")
    assert status == 200 and resumed["resumed_at"] is not None
    await live.wait_status(isf["id"], "delivered")
    sent = [f for e, _, f, _ in audit(tmp_path, "delivery.sent")]
    assert sent == [other["id"], inb["id"], isf["id"]]
    assert (await live.call("DELETE", f"/v1/pauses/{pause['id']}"))[0] == 409
    controls = [(e, a, d["filing_type"]) for e, a, _, d in audit(tmp_path, "control.")]
    assert controls == [
        ("control.paused", "local", "inbond"),
        ("control.resumed", "local", "inbond"),
    ]


async def test_a_paused_adapter_claims_nothing_and_resumes_at_its_rate_limit(
    tmp_path, live_gateway
):
    """Twenty filings wait on a paused adapter; after resume they go 5 per simulated
    second (burst 5, rate 5/s): never more in one window, whatever the machine's speed."""
    cfg = outage_config(tmp_path)
    cfg["adapters"]["outbox"].update(rate_limit=5, burst=5, concurrency=10)
    live = await live_gateway(cfg)
    _, pause = await live.call("POST", "/v1/pauses", {"adapter": "outbox", "reason": "VAN move"})
    ids = [(await live.call("POST", "/v1/filings", event(f"BOL-{i}")))[1]["id"] for i in range(20)]
    await live.advance(600)
    await live.advance(600)  # paused long past the bucket's refill: still nothing sent
    assert outbox_count(tmp_path) == 0
    _, body = await live.call("GET", f"/v1/filings/{ids[0]}")
    assert body["deliveries"][0]["state"] == "pending"  # not deferred: a pause is no outage
    async with live.session.get(live.url + "/metrics") as r:
        assert 'edigw_paused{adapter="outbox",filing_type="*"} 1.0' in await r.text()
    await live.call("DELETE", f"/v1/pauses/{pause['id']}")
    for window in range(1, 5):
        await until(lambda w=window: outbox_count(tmp_path) >= 5 * w, live)
        await live.advance(0)  # more cycles at the same instant: no token, no send
        await live.advance(0)
        assert outbox_count(tmp_path) == 5 * window
        live.clock.advance(1)
    for fid in ids:
        body = await live.wait_status(fid, "delivered")
        assert body["deliveries"][0]["attempts"] == 1


async def test_a_pause_with_an_end_resumes_on_its_own_audited(tmp_path, live_gateway):
    """ends_at passes → the gateway resumes the pause (control.resumed by system) and
    sends what it held."""
    live = await live_gateway(outage_config(tmp_path))
    ends = models.utc_iso(WEDNESDAY_NOON + timedelta(minutes=30))
    _, pause = await live.call(
        "POST",
        "/v1/pauses",
        {"adapter": "outbox", "filing_type": "isf", "reason": "r", "ends_at": ends},
    )
    _, f = await live.call("POST", "/v1/filings", event("BOL-1"))
    await live.advance(29 * 60)
    assert (await live.call("GET", f"/v1/filings/{f['id']}"))[1]["status"] == "pending"
    await live.advance(60)
    await live.wait_status(f["id"], "delivered")
    assert [(e, a, d["pause_id"], d["expired"]) for e, a, _, d in audit(tmp_path, "control.r")] == [
        ("control.resumed", "system", pause["id"], True)
    ]
    _, listed = await live.call("GET", "/v1/pauses")
    assert listed["pauses"] == []


async def test_bad_pause_requests_get_a_clear_422(tmp_path, live_gateway):
    """Neither target, an unknown adapter or type, an end in the past: 422 naming the field."""
    live = await live_gateway(outage_config(tmp_path))
    cases = [
        ({"reason": "x"}, "body"),
        ({"adapter": "nope", "reason": "x"}, "body.adapter"),
        ({"filing_type": "nope", "reason": "x"}, "body.filing_type"),
        ({"adapter": "outbox"}, "body.reason"),
        ({"adapter": "outbox", "reason": "x", "ends_at": "2020-01-01T00:00:00Z"}, "body.ends_at"),
        ({"adapter": "outbox", "reason": "x", "ends_at": 1700000000}, "body.ends_at"),
    ]
    for body, loc in cases:
        status, answer = await live.call("POST", "/v1/pauses", body)
        assert status == 422, body
        assert answer["error"]["details"][0]["loc"] == loc, answer
    assert (await live.call("DELETE", "/v1/pauses/pau_NOPE"))[0] == 404
    assert (await live.call("GET", "/v1/pauses?all=maybe"))[0] == 422
    assert audit(tmp_path, "control.") == []


async def test_cli_pause_list_resume_with_json(tmp_path, live_gateway, capsys):
    """The CLI pauses, lists (table and --json) and resumes through the API."""
    live = await live_gateway(outage_config(tmp_path))
    base = ["--url", live.url]

    def run(*argv: str) -> tuple[int, str]:
        code = cli.main(list(argv))
        return code, capsys.readouterr().out

    code, out = await asyncio.to_thread(
        run, "pause", "--type", "inbond", "--adapter", "outbox", "--reason", "CSMS", "--json", *base
    )
    assert code == 0
    pause = json.loads(out)
    assert (pause["adapter"], pause["filing_type"]) == ("outbox", "inbond")
    code, out = await asyncio.to_thread(run, "pauses", "list", *base)
    assert code == 0 and pause["id"] in out and "CSMS" in out
    code, out = await asyncio.to_thread(run, "resume", pause["id"], *base)
    assert code == 0 and out.startswith(f"resumed {pause['id']}")
    code, out = await asyncio.to_thread(run, "pauses", "list", "--json", *base)
    assert json.loads(out) == {"pauses": []}
    code, out = await asyncio.to_thread(run, "pauses", "--all", "--json", *base)
    assert [p["id"] for p in json.loads(out)["pauses"]] == [pause["id"]]
    code, out = await asyncio.to_thread(run, "pause", "--reason", "x", *base)
    assert code == 2 and "--adapter" in out


@pytest.mark.postgres
async def test_a_pause_made_on_one_gateway_holds_the_other_on_postgres(tmp_path, live_gateway):
    """Two gateways on one PostgreSQL database: a type paused through one is not sent by
    the other (the pause is in the store, read before each claim); resuming through the
    second releases it, and the first hears the resume too."""
    async with fresh_schema() as dsn:
        cfg = outage_config(tmp_path, gateway={"store": dsn})
        one = await live_gateway(cfg)
        two = await live_gateway(cfg)
        try:
            await _pause_across(one, two)
        finally:  # stop them before the schema is dropped
            for live in (one, two):
                live.stop_event.set()
                await asyncio.wait_for(live.task, 15)


async def _pause_across(one: Any, two: Any) -> None:
    _, pause = await one.call("POST", "/v1/pauses", {"filing_type": "entry", "reason": "x"})
    two.clock.set(one.clock.now())
    _, held = await two.call("POST", "/v1/filings", event("E-1", filing_type="entry"))
    _, free = await two.call("POST", "/v1/filings", event("ISF-1"))
    await two.wait_status(free["id"], "delivered")
    await one.advance(60)
    await two.advance(60)
    _, body = await one.call("GET", f"/v1/filings/{held['id']}")
    assert [(d["state"], d["attempts"]) for d in body["deliveries"]] == [("pending", 0)]
    _, listed = await two.call("GET", "/v1/pauses")
    assert [p["id"] for p in listed["pauses"]] == [pause["id"]]
    assert (await two.call("DELETE", f"/v1/pauses/{pause['id']}"))[0] == 200
    await one.wait_status(held["id"], "delivered")


async def test_a_filing_due_while_its_adapter_is_paused_is_flagged_at_risk(tmp_path, live_gateway):
    """A paused adapter is a known hold: a filing due in two days (far outside the 4 h
    margin) is flagged at_risk, naming the pause, at the next deadline scan."""
    live = await live_gateway(outage_config(tmp_path))
    _, pause = await live.call("POST", "/v1/pauses", {"adapter": "outbox", "reason": "VAN"})
    due = models.utc_iso(WEDNESDAY_NOON + timedelta(days=2))
    _, f = await live.call("POST", "/v1/filings", event("BOL-1", due_by=due))
    await live.advance(61)  # the deadline scan runs every 60 s
    await live.advance(1)
    _, body = await live.call("GET", f"/v1/filings/{f['id']}")
    assert body["at_risk"] is True
    [row] = audit(tmp_path, "filing.at_risk")
    assert row[3]["reason"] == f"paused ({pause['id']})"
