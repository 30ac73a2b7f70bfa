"""The records pages in a real headless browser (issue 20): search, open a record, restore
it with a reason; the token lives in sessionStorage, nothing leaves for a CDN."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.clock import ManualClock
from tests.test_dashboard_browser import ARTIFACTS, browser, open_page
from tests.test_records_pages import SECRETS, _auth, archived_and_live, pages_config

pytestmark = [pytest.mark.services, pytest.mark.timeout(180)]

__all__ = ["browser"]  # the fixture, imported for its use here


async def test_search_open_a_record_and_restore_it_with_a_reason(
    tmp_path: Path, start_gateway: Any, browser: Any
) -> None:
    clock = ManualClock()
    cfg = pages_config(tmp_path, f"sqlite:///{tmp_path / 'gateway.db'}")
    gw = await start_gateway(cfg, clock=clock)
    ids = await archived_and_live(gw, clock, _auth("admin"))
    fid = ids["PAGE-A-1"]
    page, outside = await open_page(browser, gw)
    await page.goto(gw.url + "/ui/")
    await page.click('nav a[href="/ui/records"]')
    await page.fill("#token", SECRETS["admin"])
    await page.click("#token-form button[type=submit]")
    await page.locator(f'#records-results tr[data-record="{ids["PAGE-A-3"]}"]').wait_for()
    await page.fill('#records-form input[name="reference"]', "page a 1")  # any spelling
    await page.click("#records-go")
    row = page.locator(f'#records-results tr[data-record="{fid}"]')
    await row.wait_for()
    assert await page.locator("#records-results tr[data-record]").count() == 1
    assert "archive" in await row.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "records-search.png"), full_page=True)

    await row.locator("a").click()
    await page.locator("#record-where").filter(has_text="archived in segment").wait_for()
    payload = await page.locator("#payload").inner_text()
    _, rec = await gw.get(f"/v1/records/{fid}", headers=_auth("admin"))
    assert payload == rec["record"]["filing"]["payload"]  # the exact text, markup as text
    assert "<script>alert(" in payload
    assert await page.locator("#payload script").count() == 0  # not an element: never run
    await page.click("#restore-go")  # no reason: nothing happens
    await page.locator("#flash").get_by_text("Give a reason").wait_for()
    assert (await gw.get(f"/v1/records/{fid}", headers=_auth("admin")))[1]["where"] == "archive"
    await page.fill("#restore-reason", "CBP request 2026-118")
    await page.click("#restore-go")
    await page.locator("#flash").get_by_text("restored from").wait_for()
    await page.locator("#record-where").filter(has_text="live").wait_for()
    await page.screenshot(path=str(ARTIFACTS / "records-restored.png"), full_page=True)
    status, hist = await gw.get(f"/v1/filings/{fid}/history", headers=_auth("admin"))
    assert status == 200
    assert any(
        e["event"] == "records.restored"
        and e["details"].get("reason") == "CBP request 2026-118"
        and e["actor"] == "admin"
        for e in hist["events"]
    ), hist
    assert outside == []
