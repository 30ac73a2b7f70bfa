"""Row 5: 2,000 filings arrive during 30 simulated minutes of 503s: no attempt spent on the
outage, breaker probes no faster than its cool-down, then a paced drain in key order."""

from __future__ import annotations

import itertools
import sqlite3
import time
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
from tests.outages.conftest import WEDNESDAY_NOON, ace_receiver, event, outage_config
from tests.reliability import relkit

__all__ = ["ace_receiver"]  # the fixture, imported for this module

OUTAGE = timedelta(minutes=30)
TRIP = 3  # filings in flight when the receiver goes down: they trip the breaker
COOLDOWN_S, MAX_COOLDOWN_S = 30.0, 240.0
RATE, BURST = 20.0, 20


async def pump(dispatcher: Dispatcher) -> None:
    while True:
        async with anyio.create_task_group() as sends:
            started = await dispatcher.dispatch_once(sends)
        if not started:
            return


@pytest.mark.slow
async def test_filings_arriving_during_an_outage_spend_no_attempt_and_drain_in_order(
    tmp_path, ace_receiver, figure
):
    """Row 5: 0 attempts spent by arrivals, probes ≥ cool-down apart, 0 order inversions."""
    filings = relkit.scale("row5_filings", 2000)
    chunks = 10
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
            breaker={
                "failure_threshold": TRIP,
                "cooldown": f"{COOLDOWN_S:g}s",
                "max_cooldown": f"{MAX_COOLDOWN_S:g}s",
            },
        ),
        {},
    )
    store = sqlite.SqliteStore(tmp_path / "gateway.db")
    await store.open()
    await store.migrate()
    adapters = registry.build_all(cfg)
    wall = time.monotonic()
    order: dict[str, int] = {}
    key_of: dict[str, str] = {}
    try:
        service = Service(store=store, cfg=cfg, clock=clock)
        dispatcher = Dispatcher(store=store, adapters=adapters, cfg=cfg, clock=clock)

        async def submit(refs: list[str]) -> list[str]:
            items = [
                Inbound(
                    event=models.FilingEvent.model_validate(
                        event(ref, ordering_key=f"key-{int(ref.split('-')[1]) % 50}")
                    )
                )
                for ref in refs
            ]
            done = await service.submit_batch(items, actor=SYSTEM)
            for s in done:
                order[s.filing.id] = len(order)
                key_of[s.filing.id] = s.filing.ordering_key
            return [s.filing.id for s in done]

        tripwires = await submit([f"TRIP-{i}" for i in range(TRIP)])
        await pump(dispatcher)  # the receiver is down: these fail and open the breaker
        arrivals: list[str] = []
        per_chunk = filings // chunks
        arrive_every = OUTAGE / chunks
        next_arrival = clock.now() + timedelta(seconds=1)
        for _ in range(20_000):
            if len(arrivals) < filings and clock.now() >= next_arrival:
                n = len(arrivals)
                arrivals += await submit([f"OUT-{n + i}" for i in range(per_chunk)])
                next_arrival += arrive_every
            await pump(dispatcher)
            counts = await store.counts()
            if counts.get("ace", {}).get("delivered", 0) == filings + TRIP:
                break
            clock.advance(1.0 if clock.now() < ace_receiver.down_until else 0.25)
        else:
            raise AssertionError(f"not drained: {await store.counts()}")
    finally:
        for a in adapters.values():
            await a.close()
        await store.close()
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        attempts = dict(db.execute("SELECT filing_id, attempts FROM deliveries"))
    spent = sum(attempts[f] - 1 for f in arrivals)
    assert spent == 0  # arrivals during the outage: one (successful) attempt each
    assert all(attempts[f] == 1 for f in arrivals)
    down = [(t, fid) for t, status, fid, _ in ace_receiver.log if status == 503]
    probes = [t for t, fid in down if fid not in tripwires or t > down[TRIP - 1][0]]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(probes)]
    assert all(g >= COOLDOWN_S for g in gaps), gaps  # never faster than the cool-down
    max_probes = 1 + int(OUTAGE.total_seconds() // COOLDOWN_S)
    assert len(probes) <= max_probes
    ok = ace_receiver.ok()
    assert len(ok) == filings + TRIP
    assert all(t >= WEDNESDAY_NOON + OUTAGE for t, *_ in ok)
    per_key: dict[str, list[int]] = defaultdict(list)
    for _, _, fid, _ in ok:
        per_key[key_of[fid]].append(order[fid])
    inversions = sum(1 for seq in per_key.values() if seq != sorted(seq))
    assert inversions == 0
    times = sorted(t for t, *_ in ok)
    drain_s = (times[-1] - times[0]).total_seconds()
    assert (len(ok) - BURST) / drain_s <= RATE * 1.01
    figure(
        "row5",
        f"{filings} filings arrived during {OUTAGE.total_seconds() / 60:.0f} simulated min of "
        f"503s: 0 attempts spent, {len(probes)} probes (min gap {min(gaps or [0]):.0f}s, "
        f"cool-down {COOLDOWN_S:g}s→{MAX_COOLDOWN_S:g}s), drained at "
        f"{(len(ok) - BURST) / drain_s:.1f}/s (limit {RATE:g}/s), 0 order inversions, "
        f"{time.monotonic() - wall:.0f}s wall",
    )
