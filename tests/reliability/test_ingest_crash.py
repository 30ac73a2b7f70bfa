"""Row 3: serve SIGKILLed during ingest; every filing that got a 2xx exists exactly once,
and nothing is half-stored (a filing without its deliveries or its accept audit row)."""

from __future__ import annotations

import random
import sqlite3
import time

import aiohttp
import anyio
import pytest

from tests.conftest import free_port
from tests.reliability import relkit

WORKERS = 8


@pytest.mark.slow
async def test_ingest_crash_keeps_every_acknowledged_filing_once_and_nothing_half_stored(
    tmp_path, figure
):
    """Row 3: 8 clients POST while serve is killed; each 2xx filing is stored exactly once."""
    attempts = relkit.scale("row3_posts", 1200)
    receiver = relkit.Receiver()
    await receiver.start()
    db = tmp_path / "gateway.db"
    config = tmp_path / "gw.toml"
    config.write_text(relkit.config_text(store=f"sqlite:///{db}", receiver_url=receiver.url))
    gw = relkit.Serve(config, free_port(), tmp_path / "serve.log")
    acked: dict[str, str] = {}  # idempotency key -> filing id, for every 2xx
    unanswered: set[str] = set()  # sent, but no response came back (the kill cut it)
    kills = 0
    started = time.monotonic()
    evs = relkit.events(attempts, 40, prefix="I")
    todo = iter(evs)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            gw.start()
            await gw.wait_ready(session)

            async def client() -> None:
                for ev in todo:
                    while True:
                        try:
                            async with session.post(f"{gw.url}/v1/filings", json=ev) as r:
                                body = await r.json()
                                if r.status in (200, 202):
                                    acked[ev["idempotency_key"]] = body["id"]
                                break
                        except aiohttp.ClientConnectorError:
                            await anyio.sleep(0.05)  # nothing was sent: send it when up
                        except (aiohttp.ClientError, TimeoutError):
                            unanswered.add(ev["idempotency_key"])  # no retry: stays unknown
                            break

            async def killer() -> None:
                nonlocal kills
                rng = random.Random(3)
                while True:
                    await anyio.sleep(rng.uniform(0.2, 0.8))
                    gw.kill()
                    kills += 1
                    gw.start()
                    await gw.wait_ready(session)

            async with anyio.create_task_group() as tg:
                tg.start_soon(killer)
                async with anyio.create_task_group() as clients:
                    for _ in range(WORKERS):
                        clients.start_soon(client)
                tg.cancel_scope.cancel()
            if not gw.alive:
                gw.start()
            await gw.wait_ready(session)
    finally:
        code = gw.terminate()
        await receiver.stop()
    assert code == 0
    assert kills >= 3
    with sqlite3.connect(db) as conn:
        stored = dict(conn.execute("SELECT idempotency_key, id FROM filings"))
        per_key = conn.execute(
            "SELECT MAX(n) FROM (SELECT COUNT(*) n FROM filings GROUP BY idempotency_key)"
        ).fetchone()[0]
        half = conn.execute(
            "SELECT COUNT(*) FROM filings f WHERE NOT EXISTS "
            "(SELECT 1 FROM deliveries d WHERE d.filing_id = f.id) OR NOT EXISTS "
            "(SELECT 1 FROM audit a WHERE a.filing_id = f.id AND a.event = 'filing.accepted')"
        ).fetchone()[0]
        orphans = conn.execute(
            "SELECT COUNT(*) FROM deliveries d WHERE NOT EXISTS "
            "(SELECT 1 FROM filings f WHERE f.id = d.filing_id)"
        ).fetchone()[0]
    lost = {k for k, fid in acked.items() if stored.get(k) != fid}
    assert not lost, f"{len(lost)} filings got a 2xx and are not stored as acknowledged"
    assert per_key == 1
    assert half == 0 and orphans == 0
    unacked_stored = set(stored) - set(acked)
    assert unacked_stored <= unanswered  # stored without a 2xx only when the answer was cut
    assert relkit.sqlite_integrity(db) == "ok"
    figure(
        "row3",
        f"{len(acked) + len(unanswered)} POSTs, {kills} kills, {len(acked)} 2xx all stored "
        f"once, {len(unanswered)} cut answers ({len(unacked_stored)} of them committed), "
        f"0 half-stored, {time.monotonic() - started:.0f}s",
    )
