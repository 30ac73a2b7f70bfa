"""The live dashboard in Chromium (issue 21): server-sent events instead of polling, the
outage form, replay of a rejected event, the charts, the filer filter."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest

from gateway import config
from gateway.api import dashboard
from tests.conftest import base_config, example
from tests.inbound.conftest import TMS_SOURCE, booking
from tests.test_dashboard_browser import ARTIFACTS, open_page
from tests.test_dashboard_browser import browser as browser  # the fixture
from tests.test_monitoring import OPS, ace_config, auth_section, submit

pytestmark = [pytest.mark.services, pytest.mark.timeout(180)]
AUTH = {"Authorization": f"Bearer {OPS}"}


async def until(predicate: Any, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def reaches(gw: Any, fid: str, status: str) -> None:
    """Wait for a filing's status, asking with the ops token."""
    deadline = asyncio.get_running_loop().time() + 30
    while (await gw.get(f"/v1/filings/{fid}", headers=AUTH))[1].get("status") != status:
        assert asyncio.get_running_loop().time() < deadline, f"{fid} not {status}"
        await asyncio.sleep(0.05)


def watch(page: Any, part: str) -> list[str]:
    """The URLs of the page's requests whose path contains ``part``."""
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if part in r.url else None)
    return seen


async def signed_in(browser: Any, gw: Any, path: str = "/ui/") -> Any:
    page, outside = await open_page(browser, gw)
    await page.goto(gw.url + path)
    await page.fill("#token", OPS)
    await page.click("#token-form button[type=submit]")
    return page, outside


async def test_connected_dashboard_gets_updates_over_the_stream_and_never_polls(
    tmp_path, start_gateway, receiver, browser, monkeypatch
):
    """With the page's poll period at 100 ms, a connected page asks for /ui/panels not
    once: the panels arrive on /ui/events, and a filing submitted meanwhile shows up."""
    monkeypatch.setattr(dashboard, "REFRESH_MS", 100)
    gw = await start_gateway(ace_config(tmp_path, receiver, auth=auth_section()))
    page, outside = await open_page(browser, gw)
    polls, streams = watch(page, "/ui/panels"), watch(page, "/ui/events")
    await page.goto(gw.url + "/ui/")
    await page.fill("#token", OPS)
    await page.click("#token-form button[type=submit]")
    await page.locator("body[data-live=stream]").wait_for()
    await page.locator('#totals [data-state="delivered"] .n').filter(has_text="0").wait_for()
    fid = await submit(gw, "LIVE-1", headers=AUTH)
    await reaches(gw, fid, "delivered")
    await page.locator('#totals [data-state="delivered"] .n').filter(has_text="1").wait_for()
    assert polls == [] and len(streams) == 1
    assert await page.evaluate("document.body.dataset.live") == "stream"
    assert outside == []


async def test_without_the_stream_the_page_polls_and_still_updates(
    tmp_path, start_gateway, receiver, browser, monkeypatch
):
    """When /ui/events cannot be reached the page falls back to polling /ui/panels."""
    monkeypatch.setattr(dashboard, "REFRESH_MS", 200)
    gw = await start_gateway(ace_config(tmp_path, receiver, auth=auth_section()))
    page, _ = await open_page(browser, gw)
    await page.route("**/ui/events*", lambda route: route.abort())
    polls = watch(page, "/ui/panels")
    await page.goto(gw.url + "/ui/")
    await page.fill("#token", OPS)
    await page.click("#token-form button[type=submit]")
    await page.locator("body[data-live=polling]").wait_for()
    fid = await submit(gw, "POLLED-1", headers=AUTH)
    await reaches(gw, fid, "delivered")
    await page.locator('#totals [data-state="delivered"] .n').filter(has_text="1").wait_for()
    await until(lambda: len(polls) >= 2)


async def test_outage_form_announces_and_ends_an_outage_audited_with_the_token(
    tmp_path, start_gateway, receiver, browser
):
    """The form announces a production outage (listed with its CSMS number, by `ops`);
    a filing for production waits deferred; End removes it and the filing goes out."""
    gw = await start_gateway(ace_config(tmp_path, receiver, auth=auth_section()))
    page, outside = await signed_in(browser, gw)
    await page.locator("body[data-live=stream]").wait_for()
    await page.select_option("#outage-form select[name=environment]", "production")
    await page.fill("#outage-form input[name=reference]", "CSMS 65432100")
    await page.fill("#outage-form input[name=reason]", "ACE production maintenance")
    await page.click("#outage-form button[type=submit]")
    item = page.locator("#outages li").filter(has_text="CSMS 65432100")
    await item.filter(has_text="by ops").wait_for()
    _, listed = await gw.get("/v1/outages", headers=AUTH)
    [outage] = listed["outages"]
    assert (outage["environment"], outage["created_by"]) == ("production", "ops")
    status, body = await gw.post(
        "/v1/filings", example(reference="HELD-1", environment="production"), headers=AUTH
    )
    assert status == 202, body
    await reaches(gw, body["id"], "deferred")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-outage.png"), full_page=True)
    await page.click(f'button[data-end-outage="{outage["id"]}"]')
    await page.locator("#outages").wait_for(state="detached")
    await reaches(gw, body["id"], "delivered")
    audit = [r async for r in gw.gateway.store.audit_rows()]
    assert [r.actor for r in audit if r.event.startswith("outage.")] == ["ops", "ops"]
    assert outside == []


def drops_config(tmp_path, *, barge: bool) -> dict[str, Any]:
    types = {**TMS_SOURCE["filing_types"], **({"barge": "isf"} if barge else {})}
    source = {**TMS_SOURCE, "filing_types": types, "kind": "directory",
              "directory": str(tmp_path / "drops"), "poll_interval": "50ms"}  # fmt: skip
    return base_config(tmp_path, sources={"legacy": source}, auth=auth_section())


async def test_replay_button_files_a_fixed_event_and_reports_a_still_bad_one(
    tmp_path, start_gateway, browser
):
    """Two files rejected by yesterday's mapping; after the fix, Replay (with a reason)
    makes the barge booking a filing and it leaves the list; the one without a filer
    stays, and the page says why."""
    drops = tmp_path / "drops"
    drops.mkdir()
    (drops / "barge.json").write_text(json.dumps(booking(7, mode="barge")))
    still = booking(8, mode="barge")
    del still["booking"]["filer"]
    (drops / "still.json").write_text(json.dumps(still))
    first = await start_gateway(drops_config(tmp_path, barge=False))

    async def rejected() -> list[dict[str, Any]]:
        return (await first.get("/v1/rejected-events", headers=AUTH))[1]["items"]

    deadline = asyncio.get_running_loop().time() + 30
    while len(await rejected()) < 2:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    ids = {i["origin"]: i["id"] for i in await rejected()}
    await first.stop()
    gw = await start_gateway(drops_config(tmp_path, barge=True))
    page, outside = await signed_in(browser, gw)
    await page.locator(f'#rejected tr[data-rejected="{ids["file:barge.json"]}"]').wait_for()
    page.on("dialog", lambda d: asyncio.ensure_future(d.accept("mapping knows barge")))
    await page.click(f'button[data-replay="{ids["file:barge.json"]}"]')
    await page.locator("#flash").get_by_text("accepted: fil_").wait_for()
    row = page.locator(f'#rejected tr[data-rejected="{ids["file:barge.json"]}"]')
    await row.wait_for(state="detached")
    await page.click(f'button[data-replay="{ids["file:still.json"]}"]')
    await page.locator("#flash").get_by_text("still rejected").wait_for()
    assert await page.locator("#rejected tr[data-rejected]").count() == 1
    _, filings = await gw.get("/v1/filings", headers=AUTH)
    assert [f["reference"] for f in filings["items"]] == ["MAEU7"]
    _, hist = await gw.get(f"/v1/filings/{filings['items'][0]['id']}/history", headers=AUTH)
    [replayed] = [e for e in hist["events"] if e["event"] == "event.replayed"]
    assert (replayed["actor"], replayed["details"]["reason"]) == ("ops", "mapping knows barge")
    assert outside == []


async def test_charts_draw_accepted_and_delivered_from_the_store(
    tmp_path, start_gateway, receiver, browser
):
    """Three filings accepted and delivered: the throughput chart counts 3 and 3 and
    draws both lines; the latency chart draws p50 and p99; all as inline SVG."""
    gw = await start_gateway(ace_config(tmp_path, receiver))
    for i in range(3):
        await gw.wait_for(await submit(gw, f"CHART-{i}"), "delivered")
    page, outside = await open_page(browser, gw)
    await page.goto(gw.url + "/ui/")
    charts = page.locator('#charts[data-accepted="3"][data-delivered="3"]')
    await charts.wait_for()
    for series in ("accepted", "delivered", "p50", "p99"):
        n = await page.locator(f'#charts [data-series="{series}"]').count()
        assert n >= 1, series
    assert await page.locator('#chart-throughput polyline[data-series="accepted"]').count() == 1
    assert outside == []


async def test_filer_filter_narrows_the_lists(tmp_path, start_gateway, receiver, browser):
    """Two dead filings of two filers; ?filer=ABC lists only ABC's and says so."""
    gw = await start_gateway(ace_config(tmp_path, receiver))
    receiver.script = [400, 400]
    for ref, filer in (("DEAD-ABC", "ABC"), ("DEAD-XYZ", "XYZ")):
        status, body = await gw.post("/v1/filings", example(reference=ref, filer_code=filer))
        assert status == 202
        await gw.wait_for(body["id"], "dead")
    page, _ = await open_page(browser, gw)
    await page.goto(gw.url + "/ui/")
    await page.locator("#dead tr[data-filing]").nth(1).wait_for()
    await page.fill("#filer", "ABC")
    await page.click("#filter-form button[type=submit]")
    await page.locator("#filter-note").wait_for()
    assert await page.locator("#by-filer tr[data-filer]").count() == 1
    await page.locator("body[data-live=stream]").wait_for()
    assert await page.locator("#dead tr[data-filing]").count() == 1
    assert "DEAD-ABC" in await page.locator("#dead").inner_text()


async def test_ack_conflict_close_and_resend_ask_a_reason_and_are_audited(
    tmp_path, start_gateway, receiver, browser
):
    """Two filings whose acks conflict: Close (reason given) clears one; Resend sends the
    other again; a cancelled prompt does nothing; both reasons are in the audit trail."""
    gw = await start_gateway(ace_config(tmp_path, receiver))
    fids = []
    for ref in ("CONFLICT-1", "CONFLICT-2"):
        fid = await submit(gw, ref)
        view = await gw.wait_for(fid, "delivered")
        dlv = view["deliveries"][0]["id"]
        await gw.post("/v1/acks", {"delivery_id": dlv, "outcome": "rejected", "codes": ["S1"]})
        _, out = await gw.post("/v1/acks", {"delivery_id": dlv, "outcome": "accepted"})
        assert out["acks"][0]["effect"] == "conflict"
        fids.append(fid)
    page, outside = await open_page(browser, gw)
    answers = [None, "seen in ACE", "CBP asked again"]  # None: the operator cancels
    page.on(
        "dialog",
        lambda d: asyncio.ensure_future(d.accept(a) if (a := answers.pop(0)) else d.dismiss()),
    )
    await page.goto(gw.url + "/ui/")
    await page.locator("body[data-live=stream]").wait_for()
    close = f'#ack-conflicts button[data-ack-action="close-ack"][data-filing="{fids[0]}"]'
    await page.click(close)
    await until(lambda: len(answers) == 2)
    assert await page.locator(f'#ack-conflicts tr[data-filing="{fids[0]}"]').count() == 1
    await page.click(close)
    await page.locator(f'#ack-conflicts tr[data-filing="{fids[0]}"]').wait_for(state="detached")
    await page.click(f'#ack-conflicts button[data-ack-action="resend"][data-filing="{fids[1]}"]')
    await page.locator("#ack-conflicts").get_by_text("No conflicting").wait_for()
    await until(lambda: len(receiver.requests) == 3)
    audit = [r async for r in gw.gateway.store.audit_rows()]
    reasons = {(r.filing_id, r.details.get("reason")) for r in audit if "reason" in r.details}
    assert {(fids[0], "seen in ACE"), (fids[1], "CBP asked again")} <= reasons
    assert outside == []


async def test_reload_button_applies_the_file_and_a_bad_one_changes_nothing(
    tmp_path, start_gateway, receiver, browser
):
    """Reload (a token with scope admin) applies a changed file and lists the keys that
    changed; a bad file is refused whole with the key named on the page; only the good
    reload is audited, under the token's name."""
    auth = auth_section()
    auth["tokens"]["ops"]["scopes"].append("admin")
    data = ace_config(tmp_path, receiver, auth=auth)
    holder = {"data": data}
    gw = await start_gateway(data, reload_from=lambda: config.parse_config(holder["data"], {}))
    page, outside = await signed_in(browser, gw)
    await page.locator("body[data-live=stream]").wait_for()
    bad = copy.deepcopy(data)
    bad["adapters"]["ace"]["concurrency"] = 0
    holder["data"] = bad
    await page.click("#reload-go")
    await page.locator("#flash .error").filter(has_text="adapters.ace.concurrency").wait_for()
    assert gw.gateway.reloader.reloads == 0
    good = copy.deepcopy(data)
    good["routes"] = [{"filing_types": ["isf"], "adapters": ["ace"]}]
    holder["data"] = good
    await page.click("#reload-go")
    await page.locator("#reload-result li").filter(has_text="routes").first.wait_for()
    assert gw.gateway.reloader.reloads == 1
    assert gw.gateway.cfg.routes[0].filing_types == ["isf"]
    audit = [r async for r in gw.gateway.store.audit_rows() if r.event == "config.reloaded"]
    assert [r.actor for r in audit] == ["ops"]
    assert outside == []
