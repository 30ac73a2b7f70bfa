"""Row 4: a worker paused (SIGSTOP) past its lease, then resumed, cannot complete or change
a delivery another process has taken over: completion is fenced by the lease token."""

from __future__ import annotations

import signal
import sqlite3
import time

import aiohttp
import anyio
import pytest
from aiohttp import web

from tests.conftest import free_port
from tests.reliability import relkit

FILINGS = 5


@pytest.mark.slow
async def test_stale_worker_resumed_after_its_lease_cannot_change_a_taken_over_delivery(
    tmp_path, figure
):
    """Row 4: A sends, is SIGSTOPped; B takes over and delivers; A resumes to a 422 → no change."""
    release_stale = anyio.Event()
    first_seen: set[str] = set()
    got: list[tuple[str, int]] = []

    async def handle(request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        got.append((key, int(request.headers["X-EDI-Attempt"])))
        if key not in first_seen:  # the stale worker's send: held, then refused for good
            first_seen.add(key)
            await release_stale.wait()
            return web.Response(status=422, text="refused (stale worker's request)")
        return web.json_response({"ok": True, "by": "takeover"})

    app = web.Application()
    app.router.add_post("/ace", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/ace"  # type: ignore[union-attr]
    db = tmp_path / "gateway.db"
    config = tmp_path / "gw.toml"
    config.write_text(
        relkit.config_text(store=f"sqlite:///{db}", receiver_url=url, lease="1s", timeout="60s")
    )
    a = relkit.Serve(config, free_port(), tmp_path / "a.log")
    b = relkit.Serve(config, free_port(), tmp_path / "b.log")
    started = time.monotonic()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            a.start()
            await a.wait_ready(session)
            for i in range(FILINGS):
                ev = relkit.events(1, 1, prefix=f"S{i}")[0]
                async with session.post(f"{a.url}/v1/filings", json=ev) as r:
                    assert r.status == 202
            while len(first_seen) < FILINGS:
                await anyio.sleep(0.02)
            a.signal(signal.SIGSTOP)  # A holds FILINGS leases and stops renewing them
            b.start()
            await b.wait_ready(session)
            with anyio.fail_after(30):
                while relkit.sqlite_states(db) != {"delivered": FILINGS}:
                    await anyio.sleep(0.1)
            with sqlite3.connect(db) as conn:
                before = conn.execute(
                    "SELECT id, state, attempts, lease_token, receipt FROM deliveries ORDER BY id"
                ).fetchall()
                audit_before = conn.execute("SELECT MAX(seq) FROM audit").fetchone()[0]
            release_stale.set()  # A's sends get their answer (a permanent refusal) …
            a.signal(signal.SIGCONT)  # … once A runs again, and it tries to record "dead"
            with anyio.fail_after(20):
                while a.log.read_text().count("delivery.lease_lost") < FILINGS:
                    await anyio.sleep(0.1)
    finally:
        release_stale.set()
        codes = [a.terminate(), b.terminate()]
        await runner.cleanup()
    assert codes == [0, 0]
    with sqlite3.connect(db) as conn:
        after = conn.execute(
            "SELECT id, state, attempts, lease_token, receipt FROM deliveries ORDER BY id"
        ).fetchall()
        stale_rows = conn.execute(
            "SELECT COUNT(*) FROM audit WHERE seq > ? AND delivery_id IS NOT NULL", (audit_before,)
        ).fetchone()[0]
    assert after == before  # state, attempts, token and receipt untouched by A
    assert all(row[1] == "delivered" and "takeover" in row[4] for row in after)
    assert stale_rows == 0  # A's refused outcomes wrote no audit row for any delivery
    assert len(got) == 2 * FILINGS  # one stale send and one takeover send per delivery
    assert relkit.sqlite_integrity(db) == "ok"
    assert (await relkit.verify_audit(f"sqlite:///{db}")).ok
    figure(
        "row4",
        f"{FILINGS} deliveries taken over from a SIGSTOPped worker, {FILINGS} stale outcomes "
        f"refused by the fence (delivery.lease_lost), 0 rows changed, "
        f"{time.monotonic() - started:.0f}s",
    )
