"""The dashboard in a real headless browser: Debian's chromium driven by Playwright (issue 7)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ROOT, service_missing
from tests.test_monitoring import OPS, VIEWER, ace_config, auth_section, submit

CHROMIUM = os.environ.get("EDIGW_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = [pytest.mark.services, pytest.mark.timeout(180)]


@pytest.fixture
async def browser():
    """A headless chromium (never `playwright install`: the system's browser)."""
    if not Path(CHROMIUM).exists():
        service_missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


async def open_page(browser, gw):
    """A page that records every request leaving for anywhere but the gateway."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    outside: list[str] = []

    async def only_the_gateway(route):
        if route.request.url.startswith(gw.url):
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    await page.route("**/*", only_the_gateway)
    return page, outside


async def test_dashboard_shows_a_dead_filing_and_retry_delivers_it(
    tmp_path, start_gateway, receiver, browser
):
    """With auth on: the page asks for a token, shows the dead count, Retry delivers the filing,
    the detail page shows the audit trail with the token's name; nothing leaves for a CDN."""
    gw = await start_gateway(ace_config(tmp_path, receiver, auth=auth_section()))
    ops = {"Authorization": f"Bearer {OPS}"}
    receiver.script = [400]
    fid = await submit(gw, "DEAD-BROWSER", headers=ops)
    page, outside = await open_page(browser, gw)
    await page.goto(gw.url + "/ui/")
    await page.fill("#token", OPS)
    await page.click("#token-form button[type=submit]")
    dead_count = page.locator('#totals [data-state="dead"] .n')
    await dead_count.filter(has_text="1").wait_for()
    assert await page.locator(f'#dead tr[data-filing="{fid}"]').count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-dead.png"), full_page=True)

    await page.click(f'#dead button[data-action="retry"][data-filing="{fid}"]')
    await page.locator("#dead").get_by_text("No dead deliveries.").wait_for()
    await page.locator('#totals [data-state="delivered"] .n').filter(has_text="1").wait_for()
    await page.screenshot(path=str(ARTIFACTS / "dashboard-retried.png"), full_page=True)

    await page.goto(f"{gw.url}/ui/filings/{fid}")  # same tab: the token is still there
    await page.locator("#filing-status").filter(has_text="delivered").wait_for()
    history = await page.locator("#history").inner_text()
    assert "delivery.retried" in history and "ops" in history
    await page.screenshot(path=str(ARTIFACTS / "filing-detail.png"), full_page=True)
    assert outside == []
    stored = await page.evaluate("sessionStorage.getItem('edigw.token')")
    assert stored == OPS


async def test_dashboard_bulk_retry_shows_the_count_and_asks_for_a_reason(
    tmp_path, start_gateway, receiver, browser
):
    """Preview says how many; without a reason nothing happens; with one, all are retried."""
    gw = await start_gateway(ace_config(tmp_path, receiver))
    receiver.script = [400, 400]
    fids = [await submit(gw, f"BULK-{i}") for i in range(2)]
    for fid in fids:
        await gw.wait_for(fid, "dead")
    page, outside = await open_page(browser, gw)
    await page.goto(gw.url + "/ui/")
    await page.select_option("#bulk-form select[name=adapter]", "ace")
    await page.click("#bulk-preview")
    await page.locator("#bulk-count").filter(has_text="This will retry 2 deliveries.").wait_for()
    await page.click("#bulk-go")
    await page.locator("#flash").get_by_text("Give a reason").wait_for()
    assert (await gw.gateway.store.counts())["ace"].get("dead") == 2
    await page.fill("#bulk-reason", "receiver fixed")
    await page.click("#bulk-go")
    await page.locator("#flash").get_by_text("Retried 2 deliveries.").wait_for()
    for fid in fids:
        await gw.wait_for(fid, "delivered")
    _, hist = await gw.get(f"/v1/filings/{fids[0]}/history")
    assert any(
        e["event"] == "delivery.retried" and e["details"].get("reason") == "receiver fixed"
        for e in hist["events"]
    )
    assert outside == []


async def test_dashboard_with_a_read_only_token_refuses_the_retry(
    tmp_path, start_gateway, receiver, browser
):
    """A read-only token sees the figures; pressing Retry shows the 403 and changes nothing."""
    gw = await start_gateway(ace_config(tmp_path, receiver, auth=auth_section()))
    receiver.script = [400]
    fid = await submit(gw, "DEAD-RO", headers={"Authorization": f"Bearer {OPS}"})
    page, _ = await open_page(browser, gw)
    await page.goto(gw.url + "/ui/")
    await page.fill("#token", VIEWER)
    await page.click("#token-form button[type=submit]")
    await page.locator(f'#dead tr[data-filing="{fid}"]').wait_for()
    await page.click(f'#dead button[data-action="retry"][data-filing="{fid}"]')
    await page.locator("#flash").get_by_text("lacks scope 'operate'").wait_for()
    assert (await gw.gateway.store.counts())["ace"].get("dead") == 1
