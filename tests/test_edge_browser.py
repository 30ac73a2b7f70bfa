"""A real browser on another site attacks a gateway in auth mode `none` (issue 16): its
cross-site form and its no-cors fetch reach the gateway and are refused; nothing changes."""

from __future__ import annotations

import json
import sqlite3

import pytest
from aiohttp import web

from tests.conftest import base_config, example
from tests.test_dashboard_browser import browser  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.services, pytest.mark.timeout(180)]

EVIL_PAGE = """<!doctype html><html><body>
<form id="f" method="POST" action="{gw}/v1/filings/{fid}/cancel" enctype="text/plain">
<input name='{{"reason":"' value='x"}}'></form>
<script>
fetch("{gw}/v1/filings", {{method: "POST", mode: "no-cors",
  headers: {{"Content-Type": "text/plain"}}, body: {event}}})
  .finally(function () {{ document.title = "fetched"; }});
fetch("{gw}/v1/deliveries/retry", {{method: "POST", mode: "no-cors",
  headers: {{"Content-Type": "text/plain"}}, body: '{{"reason": "x"}}'}})
  .finally(function () {{ document.title += "+retried"; }});
</script></body></html>"""


async def test_a_page_on_another_site_cannot_cancel_or_submit(tmp_path, start_gateway, browser):  # noqa: F811
    """Form POST and no-cors fetches from http://localhost:N to the gateway on 127.0.0.1:
    refused (403 on the form's page), no filing added, none cancelled."""
    gw = await start_gateway(base_config(tmp_path))
    status, filing = await gw.post("/v1/filings", example())
    assert status == 202
    event = json.dumps(json.dumps(example(reference="FROM-EVIL")))
    html = EVIL_PAGE.format(gw=gw.url, fid=filing["id"], event=event)

    async def page_handler(_request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page_handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        context = await browser.new_context()
        page = await context.new_page()
        seen: list[tuple[str, int]] = []
        page.on("response", lambda r: seen.append((r.url, r.status)))
        await page.goto(f"http://localhost:{port}/")
        await page.wait_for_function("document.title === 'fetched+retried'")
        await page.evaluate("document.getElementById('f').submit()")
        await page.wait_for_url(f"{gw.url}/v1/filings/{filing['id']}/cancel")
        body = json.loads(await page.inner_text("body"))
        assert body["error"]["code"] == "origin_refused"
        await context.close()
    finally:
        await runner.cleanup()
    cancel = [s for u, s in seen if u.endswith("/cancel")]
    assert cancel == [403], seen
    with sqlite3.connect(tmp_path / "gateway.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM filings").fetchone()[0] == 1
        assert (
            conn.execute(
                "SELECT COUNT(*) FROM audit WHERE event LIKE '%cancel%' OR event LIKE '%retried%'"
            ).fetchone()[0]
            == 0
        )
    _, view = await gw.get(f"/v1/filings/{filing['id']}")
    assert view["status"] != "cancelled"
