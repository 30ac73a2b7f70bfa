"""The issue-3 scenario: 1,000 filings, a receiver down (503) for 30 simulated minutes."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from datetime import timedelta

import anyio
import pytest

from gateway import config, models, registry
from gateway.clock import ManualClock
from gateway.delivery.dispatcher import Dispatcher
from gateway.service import Inbound, Service
from gateway.store import sqlite
from gateway.values import SYSTEM

from .conftest import WEDNESDAY_NOON, event, outage_config

RATE, BURST = 20.0, 20
FILINGS, KEYS = 1000, 50
OUTAGE = timedelta(minutes=30)


async def drive(dispatcher: Dispatcher, clock: ManualClock, *, step_s: float, until) -> None:
    """Run the dispatcher on simulated time: claim until nothing is free, then tick."""
    for _ in range(100_000):
        if await until():
            return
        while True:
            async with anyio.create_task_group() as sends:
                started = await dispatcher.dispatch_once(sends)
            if not started:
                break
        clock.advance(step_s)
    raise AssertionError("the scenario did not finish")


@pytest.mark.slow
async def test_thousand_filings_survive_a_30_minute_503_outage_and_drain_paced(
    tmp_path, ace_receiver
):
    """All delivered, ≤1 attempt each spent on the outage, key order kept, rate within limit."""
    clock = ManualClock(WEDNESDAY_NOON)
    ace_receiver.clock = clock
    ace_receiver.down_until = WEDNESDAY_NOON + OUTAGE
    cfg = config.parse_config(
        outage_config(
            tmp_path,
            adapters={
                "ace": {
                    "type": "http",
                    "url": ace_receiver.url,
                    "timeout": "5s",
                    "concurrency": 8,
                    "rate_limit": RATE,
                    "burst": BURST,
                }
            },
            routes=[{"filing_types": ["*"], "adapters": ["ace"]}],
            breaker={"failure_threshold": 3, "cooldown": "30s", "max_cooldown": "4m"},
        ),
        {},
    )
    store = sqlite.SqliteStore(tmp_path / "gateway.db")
    await store.open()
    await store.migrate()
    adapters = registry.build_all(cfg)
    try:
        service = Service(store=store, cfg=cfg, clock=clock)
        items = [
            Inbound(
                event=models.FilingEvent.model_validate(
                    event(f"BOL-{i:04d}", ordering_key=f"key-{i % KEYS}")
                )
            )
            for i in range(FILINGS)
        ]
        accepted = await service.submit_batch(items, actor=SYSTEM)
        order = {s.filing.id: i for i, s in enumerate(accepted)}
        key_of = {s.filing.id: s.filing.ordering_key for s in accepted}
        dispatcher = Dispatcher(store=store, adapters=adapters, cfg=cfg, clock=clock)

        async def all_delivered() -> bool:
            counts = await store.counts()
            return counts.get("ace", {}).get("delivered", 0) == FILINGS

        await drive(dispatcher, clock, step_s=0.5, until=all_delivered)
    finally:
        for a in adapters.values():
            await a.close()
        await store.close()

    with sqlite3.connect(tmp_path / "gateway.db") as db:
        attempts = [r[0] for r in db.execute("SELECT attempts FROM deliveries")]
        events = [r[0] for r in db.execute("SELECT event FROM audit")]
    # every delivery: one successful attempt, plus at most one spent on the outage
    assert max(attempts) <= 2
    spent_on_outage = sum(a - 1 for a in attempts)
    failures = [r for r in ace_receiver.log if r[1] == 503]
    assert spent_on_outage <= cfg.adapters["ace"].concurrency
    assert "adapter.breaker_open" in events
    assert "adapter.breaker_closed" in events

    ok = ace_receiver.ok()
    assert len(ok) == FILINGS
    assert all(t >= WEDNESDAY_NOON + OUTAGE for t, *_ in ok)
    # order per ordering key preserved
    per_key: dict[str, list[int]] = defaultdict(list)
    for _, _, filing_id, _ in ok:
        per_key[key_of[filing_id]].append(order[filing_id])
    assert all(seq == sorted(seq) for seq in per_key.values())
    # drain rate: over any span of T seconds, at most burst + rate·T sends
    times = sorted(t for t, *_ in ok)
    for span in (1.0, 5.0, 10.0):
        j = 0
        for i, t in enumerate(times):
            while (t - times[j]).total_seconds() >= span:
                j += 1
            assert i - j + 1 <= BURST + RATE * span, (span, t)
    drain_s = (times[-1] - times[0]).total_seconds()
    rate = (FILINGS - BURST) / drain_s
    assert rate <= RATE * 1.01
    print(
        f"\nscenario: {len(failures)} 503s, {spent_on_outage} attempts spent on the outage "
        f"by {sum(1 for a in attempts if a > 1)} deliveries; drained {FILINGS} in {drain_s:.1f} "
        f"simulated s = {FILINGS / drain_s:.1f}/s ({rate:.2f}/s after the burst; "
        f"limit {RATE}/s, burst {BURST}); recovered "
        f"{(times[0] - (WEDNESDAY_NOON + OUTAGE)).total_seconds():.0f} s after the outage"
    )
