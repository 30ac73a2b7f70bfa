"""Regenerate docs/dashboard.png: `make run`'s config, a few submissions, headless chromium.

    .venv/bin/python docs/dashboard_screenshot.py

Runs `edi-gateway serve --config config/gateway.toml` with the store and outbox in a
temporary directory, submits every example, announces a production outage and submits a
few more (they wait, deferred), then photographs the dashboard.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def post(url: str, body: object) -> dict:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def main() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = Path(tempfile.mkdtemp(prefix="edigw-shot-"))
    env = {
        **os.environ,
        "EDIGW_GATEWAY__LISTEN": f"127.0.0.1:{port}",
        "EDIGW_GATEWAY__STORE": f"sqlite:///{tmp / 'gateway.db'}",
        "EDIGW_ADAPTERS__OUTBOX__DIRECTORY": str(tmp / "outbox"),
        "EDIGW_MONITORING__QUEUE_CACHE": "0s",
    }
    exe = Path(sys.executable).parent / "edi-gateway"
    proc = subprocess.Popen(
        [str(exe), "serve", "--config", str(ROOT / "config/gateway.toml")],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # a minute: a loaded machine starts it slowly
            try:
                urllib.request.urlopen(url + "/readyz")
                break
            except OSError:
                time.sleep(0.1)
        for path in sorted((ROOT / "examples").glob("*.json")):
            post(url + "/v1/filings", json.loads(path.read_text()))
        time.sleep(1)
        ends = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        post(
            url + "/v1/outages",
            {
                "environment": "production",
                "ends_at": ends,
                "reason": "ACE production maintenance",
                "reference": "CSMS 6512345",
            },
        )
        for i in range(3):
            event = json.loads((ROOT / "examples/entry_summary.json").read_text())
            event.update(environment="production", reference=f"ES-HELD-{i}", idempotency_key=None)
            post(url + "/v1/filings", event)
        time.sleep(1.5)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(url + "/ui/")
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ROOT / "docs/dashboard.png"), full_page=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    print("wrote docs/dashboard.png")


if __name__ == "__main__":
    main()
