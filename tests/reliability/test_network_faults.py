"""Row 6: network faults between the gateway and its receiver, through our own proxy:
latency, reset, blackhole, half-open; the gateway recovers alone, timeouts fire, nothing
is lost."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import anyio
import pytest

from tests.conftest import base_config
from tests.reliability import relkit
from tests.reliability.faultproxy import FaultProxy

PHASES = ("pass", "latency", "reset", "blackhole", "half_open")
PER_PHASE = 20


def failed_attempts(db: Path, containing: str = "") -> int:
    """Failed attempts so far (retry scheduled or deferred), optionally by their error."""
    with sqlite3.connect(db, timeout=10) as conn:
        rows = conn.execute(
            "SELECT details FROM audit WHERE event IN "
            "('delivery.retry_scheduled', 'delivery.deferred')"
        ).fetchall()
    return sum(containing in r[0] for r in rows)


@pytest.mark.slow
async def test_receiver_network_faults_recover_without_operator_and_lose_nothing(
    tmp_path, start_gateway, figure
):
    """Row 6: each fault under load until it shows, then healed: all delivered, in order,
    same keys."""
    receiver = relkit.Receiver()
    await receiver.start()
    proxy = FaultProxy("127.0.0.1", receiver.port)
    await proxy.start()
    started = time.monotonic()
    try:
        gw = await start_gateway(
            base_config(
                tmp_path,
                adapters={
                    "ace": {
                        "type": "http",
                        "url": f"http://127.0.0.1:{proxy.port}/ace",
                        "timeout": "1s",
                        "concurrency": 4,
                    }
                },
                routes=[{"filing_types": ["*"], "adapters": ["ace"]}],
                retry={"max_attempts": 1000, "initial_delay": "50ms", "max_delay": "500ms"},
                breaker={"failure_threshold": 5, "cooldown": "500ms", "max_cooldown": "1s"},
            )
        )
        accepted: list[str] = []
        key_of: dict[str, str] = {}
        shown: dict[str, bool] = {}
        db = tmp_path / "gateway.db"
        for n, mode in enumerate(PHASES):
            proxy.mode = mode
            before = (len(receiver.got), failed_attempts(db), failed_attempts(db, "timed out"))
            for ev in relkit.events(PER_PHASE, 5, prefix=f"N{n}"):
                status, body = await gw.post("/v1/filings", ev)
                assert status == 202
                accepted.append(body["id"])
                key_of[body["id"]] = ev["ordering_key"]
            # the phase lasts until the fault showed: a request through (pass, latency), a
            # failed attempt (reset), an attempt that timed out (blackhole, half-open)
            with anyio.fail_after(60):
                while not (
                    len(receiver.got) > before[0]
                    if mode in ("pass", "latency")
                    else failed_attempts(db) > before[1]
                    if mode == "reset"
                    else failed_attempts(db, "timed out") > before[2]
                ):
                    await anyio.sleep(0.05)
            shown[mode] = True
        proxy.mode = "pass"
        healed = time.monotonic()
        for fid in accepted:
            await gw.wait_for(fid, "delivered", timeout=30)
        recovered_s = time.monotonic() - healed
    finally:
        await proxy.stop()
        await receiver.stop()
    relkit.check_history(receiver.got, accepted, key_of)
    with sqlite3.connect(tmp_path / "gateway.db") as conn:
        errors_seen = [
            r[0]
            for r in conn.execute(
                "SELECT details FROM audit WHERE event IN "
                "('delivery.retry_scheduled', 'delivery.deferred')"
            )
        ]
    timeouts = sum("timed out" in e for e in errors_seen)
    assert timeouts > 0  # blackhole and half-open end in the adapter's timeout
    assert list(shown) == list(PHASES)  # every fault took effect while it lasted
    figure(
        "row6",
        f"{len(accepted)} filings through latency/reset/blackhole/half-open (each until it "
        f"showed; connections per mode {dict(proxy.seen)}): "
        f"{len(errors_seen)} failed attempts ({timeouts} timeouts), all delivered "
        f"{recovered_s:.1f}s after healing, 0 lost, 0 order inversions, "
        f"{time.monotonic() - started:.0f}s; PostgreSQL-side faults: not yet",
    )
