"""A paced adapter is claimed a batch at a time (found by bench row F2: a drain that woke
for every single token paid a claim cycle per send and fell far below its limit)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.delivery import guard
from gateway.rules import pacing

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def test_a_batch_is_a_few_ms_of_the_rate_within_half_the_burst() -> None:
    """500/s burst 10: a batch is 5 (half the burst: 10 ms); 1/s: 1; 10,000/s burst 50:
    25; 100/s burst 10: 2 (20 ms of the rate)."""
    assert pacing.TokenBucket(rate=500, burst=10, now=T0).batch(guard.PACE_BATCH_S) == 5
    assert pacing.TokenBucket(rate=1, burst=5, now=T0).batch(guard.PACE_BATCH_S) == 1
    assert pacing.TokenBucket(rate=1, burst=1, now=T0).batch(guard.PACE_BATCH_S) == 1
    assert pacing.TokenBucket(rate=10_000, burst=50, now=T0).batch(guard.PACE_BATCH_S) == 25
    assert pacing.TokenBucket(rate=100, burst=10, now=T0).batch(guard.PACE_BATCH_S) == 2


def test_a_paced_drain_keeps_its_rate_when_each_claim_takes_time() -> None:
    """The dispatcher's cycle on the pure bucket: wait until a batch has accrued, admit
    what is available, spend ``latency`` claiming (tokens accrue meanwhile, capped at the
    burst), take what was admitted. 500/s, burst 10, 8 ms a claim: with a batch of the
    whole burst the bucket sat full during every claim and the drain ran at
    10 / 28 ms = 357/s (bench row 10: 0.67-0.72 of the rate); with half, at the rate.
    (A claim longer than half the burst's time still loses tokens: reserving them at
    admission would not; not built.)"""
    b = pacing.TokenBucket(rate=500, burst=10, now=T0)
    now, sent, latency = T0, 0, timedelta(milliseconds=8)
    while now < T0 + timedelta(seconds=10):
        now += timedelta(seconds=b.wait_s(now, b.batch(guard.PACE_BATCH_S)))
        admitted = b.available(now)
        now += latency
        b.take(admitted, now)
        sent += admitted
    assert sent / 10 >= 0.95 * 500


def test_the_wait_is_until_the_batch_has_accrued() -> None:
    """Emptied, a 500/s bucket waits 20 ms for 10 tokens (2 ms for 1); never past burst."""
    b = pacing.TokenBucket(rate=500, burst=10, now=T0)
    b.take(10, T0)
    assert abs(b.wait_s(T0, 10) - 0.02) < 1e-9
    assert abs(b.wait_s(T0) - 0.002) < 1e-9
    assert abs(b.wait_s(T0, 99) - 0.02) < 1e-9
    assert b.wait_s(T0 + timedelta(milliseconds=20), 10) == 0.0


async def test_the_guard_admits_a_paced_adapter_a_batch_at_a_time(
    store: Any, tmp_path: Any
) -> None:
    """500/s, burst 10: all 10 at first; emptied, nothing 2 ms later (one token is not a
    batch, unless new work woke the dispatcher: then the one token), 5 (a batch) at 12 ms,
    10 once 22 ms have passed. The store is real (the guard reads pauses)."""
    cfg = _paced_config(tmp_path)
    g = guard.Guard(store=store, cfg=cfg, adapters=["ace"], now=T0)
    assert (await g.admit(T0))["ace"].limit == 10
    for _ in range(10):
        g.claimed("ace", guard.Mode.NORMAL, T0)
    assert (await g.admit(T0 + timedelta(milliseconds=2)))["ace"].limit == 0
    assert g.starved("ace", T0 + timedelta(milliseconds=2))
    # new work woke the dispatcher: one token is enough (a filing arriving mid-drain)
    assert not g.starved("ace", T0 + timedelta(milliseconds=2), eager=True)
    assert (await g.admit(T0 + timedelta(milliseconds=2), eager=True))["ace"].limit == 1
    g.claimed("ace", guard.Mode.NORMAL, T0 + timedelta(milliseconds=2))
    assert (await g.admit(T0 + timedelta(milliseconds=12)))["ace"].limit == 5
    assert (await g.admit(T0 + timedelta(milliseconds=22)))["ace"].limit == 10


async def test_new_work_is_claimed_at_one_token_mid_drain(tmp_path: Any) -> None:
    """A paced adapter (500/s, burst 10) emptied by a drain: 2 ms later one token is back.
    The drain's own cycle waits for a batch (5); a ``wake`` (new work, e.g. another filer's
    filing at the front of the fair order) claims at the one token. Real SQLite store,
    real filedrop adapter, a manual clock."""
    import anyio

    from gateway import models, registry
    from gateway.clock import ManualClock
    from gateway.delivery.dispatcher import Dispatcher
    from gateway.service import Inbound, Service
    from gateway.store import sqlite
    from gateway.values import SYSTEM

    cfg = _paced_config(tmp_path, concurrency=16)
    clock = ManualClock(T0)
    store = sqlite.SqliteStore(tmp_path / "gateway.db")
    await store.open()
    await store.migrate()
    adapters = registry.build_all(cfg)
    try:
        service = Service(store=store, cfg=cfg, clock=clock)
        dispatcher = Dispatcher(store=store, adapters=adapters, cfg=cfg, clock=clock)
        events = [
            {
                "filing_type": "isf",
                "environment": "production",
                "reference": f"PACE-{i}",
                "filer_code": "ABC1",
                "payload": {"importer": "ACME", "bill_of_lading": f"PACE-{i}"},
            }
            for i in range(30)
        ]
        items = [Inbound(event=models.FilingEvent.model_validate(e)) for e in events]
        await service.submit_batch(items, actor=SYSTEM)

        async def once() -> int:
            async with anyio.create_task_group() as sends:
                return await dispatcher.dispatch_once(sends)

        assert await once() == 10  # the full burst
        clock.advance(0.002)  # one token back: not a batch
        assert await once() == 0
        dispatcher.wake()
        assert await once() == 1
        clock.advance(0.010)  # five more: the drain's batch
        assert await once() == 5
    finally:
        for a in adapters.values():
            await a.close()
        await store.close()


def _paced_config(tmp_path: Any, **extra: Any) -> Any:
    """One filedrop adapter ``ace`` paced at 500/s, burst 10, taking every filing."""
    from gateway import config
    from tests.conftest import base_config

    ace = {"type": "filedrop", "directory": str(tmp_path / "o"), "rate_limit": 500, "burst": 10}
    return config.parse_config(
        base_config(
            tmp_path,
            adapters={"ace": {**ace, **extra}},
            routes=[{"filing_types": ["*"], "adapters": ["ace"]}],
        ),
        {},
    )
