"""The Saturday-night story, photographed from a real gateway run (README "Monitoring").

    .venv/bin/python docs/saturday_night.py          # about 7 minutes

Runs `edi-gateway serve --config config/gateway.toml` (store and outbox in a temporary
directory, the outbox paced at 2 sends a second) with a filing a second coming in, then,
through the dashboard's own forms in headless Chromium:

1. announces an ACE production outage (CSMS number) and pauses in-bond filings
   (CBP asked filers to stop them): the queue grows → docs/saturday-1-outage.png
2. ends the outage; the backlog drains at the adapter's rate limit (in-bond stays
   paused) → docs/saturday-2-draining.png
3. resumes in-bond; the charts after the night → docs/saturday-3-charts.png
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def post(url: str, body: object) -> Any:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def trickle(url: str, stop: threading.Event) -> None:
    """Filings as a broker's systems send them: entry summaries, ISFs, some in-bond."""
    examples = {p.stem: json.loads(p.read_text()) for p in (ROOT / "examples").glob("*.json")}
    kinds = [k for k in ("entry_summary", "isf", "entry", "inbond") if k in examples]
    i = 0
    while not stop.is_set():
        event = dict(examples[kinds[i % len(kinds)]])
        event.update(environment="production", reference=f"SAT-{i:05d}", idempotency_key=None)
        try:
            post(url + "/v1/filings", event)
        except OSError:
            pass
        i += 1
        stop.wait(1.0)


def shoot(page: Page, name: str, *, charts_only: bool = False) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(1500)
    target = page.locator("#charts") if charts_only else page
    target.screenshot(path=str(DOCS / name), **({} if charts_only else {"full_page": False}))
    print("wrote", DOCS / name)


def main() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = Path(tempfile.mkdtemp(prefix="edigw-saturday-"))
    env = {
        **os.environ,
        "EDIGW_GATEWAY__LISTEN": f"127.0.0.1:{port}",
        "EDIGW_GATEWAY__STORE": f"sqlite:///{tmp / 'gateway.db'}",
        "EDIGW_ADAPTERS__OUTBOX__DIRECTORY": str(tmp / "outbox"),
        "EDIGW_ADAPTERS__OUTBOX__RATE_LIMIT": "2",
        "EDIGW_ADAPTERS__OUTBOX__BURST": "2",
        "EDIGW_MONITORING__QUEUE_CACHE": "0s",
    }
    exe = Path(sys.executable).parent / "edi-gateway"
    proc = subprocess.Popen(
        [str(exe), "serve", "--config", str(ROOT / "config/gateway.toml")],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/readyz")
                break
            except OSError:
                time.sleep(0.1)
        feeder = threading.Thread(target=trickle, args=(url, stop), daemon=True)
        feeder.start()
        time.sleep(60)  # a normal minute: everything goes out at once
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url + "/ui/")
            page.locator("body[data-live=stream]").wait_for()
            # 22:00 Saturday: ACE production goes down for maintenance
            page.select_option("#outage-form select[name=environment]", "production")
            page.fill("#outage-form input[name=reference]", "CSMS 66112233")
            page.fill("#outage-form input[name=reason]", "ACE production maintenance")
            page.click("#outage-form button[type=submit]")
            page.locator("#outages li").first.wait_for()
            # CBP asks filers to hold in-bond transmissions until further notice
            page.select_option("#pause-form select[name=filing_type]", "inbond")
            page.fill("#pause-form input[name=reason]", "CSMS 66112240: hold in-bond")
            page.click("#pause-form button[type=submit]")
            page.locator("#pauses li").first.wait_for()
            time.sleep(150)  # the queue grows while the outage lasts
            shoot(page, "saturday-1-outage.png")
            # ACE is back: end the outage; the backlog drains at 2 sends a second
            page.locator("button[data-end-outage]").first.click()
            page.locator("#outages").wait_for(state="detached")
            time.sleep(50)
            shoot(page, "saturday-2-draining.png")
            time.sleep(90)  # drained; in-bond still held
            page.locator("button[data-resume]").first.click()
            page.locator("#pauses li").first.wait_for(state="detached")
            stop.set()
            time.sleep(75)
            shoot(page, "saturday-3-charts.png", charts_only=True)
            browser.close()
    finally:
        stop.set()
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
