"""Row 13: SIGTERM under load: /readyz flips first, in-flight sends finish or their leases
are released, the process exits 0 within the grace period, nothing is lost."""

from __future__ import annotations

import signal
import sqlite3
import time

import aiohttp
import anyio
import pytest

from tests.conftest import free_port
from tests.reliability import relkit

GRACE_S = 2.0


@pytest.mark.slow
async def test_sigterm_under_load_flips_readyz_first_exits_in_grace_and_loses_nothing(
    tmp_path, figure
):
    """Row 13: readyz 503 before the listener closes; exit 0 ≤ grace; all delivered after."""
    receiver = relkit.Receiver(delay_s=0.3)
    await receiver.start()
    db = tmp_path / "gateway.db"
    config = tmp_path / "gw.toml"
    config.write_text(
        relkit.config_text(
            store=f"sqlite:///{db}", receiver_url=receiver.url, grace=f"{GRACE_S:g}s", lease="5s"
        )
    )
    gw = relkit.Serve(config, free_port(), tmp_path / "serve.log")
    acked: list[str] = []
    readyz: list[tuple[float, int | None]] = []
    evs = iter(relkit.events(100_000, 20, prefix="G"))
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            gw.start()
            await gw.wait_ready(session)

            async def load() -> None:
                for ev in evs:
                    try:
                        async with session.post(f"{gw.url}/v1/filings", json=ev) as r:
                            if r.status in (200, 202):
                                acked.append((await r.json())["id"])
                    except (aiohttp.ClientError, TimeoutError):
                        return

            async def probe() -> None:
                while True:
                    try:
                        async with session.get(f"{gw.url}/readyz") as r:
                            readyz.append((time.monotonic(), r.status))
                    except (aiohttp.ClientError, TimeoutError):
                        readyz.append((time.monotonic(), None))
                        return
                    await anyio.sleep(0.005)

            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(load)
                with anyio.fail_after(60):  # under load: sends reached the receiver and
                    while True:  # more are in flight (each takes the receiver 0.3 s)
                        in_flight = relkit.sqlite_states(db).get("in_flight", 0)
                        if receiver.got and in_flight:
                            break
                        await anyio.sleep(0.02)
                tg.start_soon(probe)
                with anyio.fail_after(30):  # /readyz answered before the signal
                    while not readyz:
                        await anyio.sleep(0.005)
                sent_at = time.monotonic()
                gw.signal(signal.SIGTERM)
                assert gw.proc is not None
                while gw.proc.poll() is None and time.monotonic() - sent_at < 15:
                    await anyio.sleep(0.01)
                exit_s = time.monotonic() - sent_at
                tg.cancel_scope.cancel()
            code = gw.proc.returncode
            states_after = relkit.sqlite_states(db)
            with sqlite3.connect(db) as conn:
                stored = {r[0] for r in conn.execute("SELECT id FROM filings")}
                leased = conn.execute(
                    "SELECT COUNT(*) FROM deliveries WHERE lease_owner IS NOT NULL"
                ).fetchone()[0]
            receiver.delay_s = 0
            gw.start()  # a new process delivers what the old one did not get to
            await gw.wait_ready(session)
            with anyio.fail_after(60):
                while relkit.sqlite_states(db) != {"delivered": len(stored)}:
                    await anyio.sleep(0.2)
    finally:
        final = gw.terminate()
        await receiver.stop()
    assert code == 0 and final == 0
    assert exit_s <= GRACE_S + 1.5, exit_s
    statuses = [s for _, s in readyz]
    after_term = [s for t, s in readyz if t >= sent_at]
    assert 503 in after_term, readyz[-5:]  # /readyz said "not ready" …
    first_503 = statuses.index(503)
    assert None not in statuses[:first_503]  # … before the listener went away
    assert "in_flight" not in states_after and leased == 0  # finished or released
    assert set(acked) <= stored  # every 2xx is stored
    assert set(acked) <= {g.filing_id for g in receiver.got}  # and reached the receiver
    figure(
        "row13",
        f"SIGTERM with {in_flight} sends in flight under load: /readyz 503 "
        f"{readyz[first_503][0] - sent_at:.3f}s after the signal, exit 0 in {exit_s:.2f}s "
        f"(grace {GRACE_S:g}s), 0 leases left, {len(acked)} accepted, 0 lost",
    )
