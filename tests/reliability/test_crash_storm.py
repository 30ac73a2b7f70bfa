"""Rows 1-3: crash storms on SQLite and on PostgreSQL (three processes), crash during ingest.

Jepsen-style: the client records every acknowledged operation (2xx), ``serve`` processes
are SIGKILLed on a schedule and restarted, and at the end the history (what the recording
receiver got) is compared with what was acknowledged and with the database.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from pathlib import Path

import aiohttp
import anyio
import asyncpg
import pytest

from tests.conftest import free_port
from tests.reliability import relkit
from tests.store.conftest import fresh_schema

#: SIGKILL each time the storm made this much more progress (filings accepted + delivered,
#: as a share of the filings), cycling short and long lives: kills come from events, so a
#: fast machine cannot finish before them, nor a slow one starve between them
KILL_AFTER_PROGRESS = (1 / 40, 1 / 8)
CONCURRENCY = 8


async def delivered(store_url: str) -> int:
    if store_url.startswith("sqlite:///"):
        return relkit.sqlite_states(Path(store_url.removeprefix("sqlite:///"))).get("delivered", 0)
    conn = await asyncpg.connect(store_url)
    try:
        return int(await conn.fetchval("SELECT COUNT(*) FROM deliveries WHERE state='delivered'"))
    finally:
        await conn.close()


async def storm(
    tmp_path: Path, store_url: str, *, processes: int, filings: int, keys: int, deadline_s: float
) -> tuple[relkit.Receiver, list[str], dict[str, str], int, float]:
    """Run ``processes`` serve processes; kill one at a time until all is delivered."""
    receiver = relkit.Receiver()
    await receiver.start()
    config = tmp_path / "gw.toml"
    config.write_text(
        relkit.config_text(store=store_url, receiver_url=receiver.url, concurrency=CONCURRENCY)
    )
    gateways = [
        relkit.Serve(config, free_port(), tmp_path / f"serve{i}.log") for i in range(processes)
    ]
    evs = relkit.events(filings, keys)
    accepted: list[str] = []
    key_of: dict[str, str] = {}
    kills = 0
    started = time.monotonic()
    done = anyio.Event()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
            for g in gateways:
                g.start()
            for g in gateways:
                await g.wait_ready(session)

            async def progress() -> int:
                return len(accepted) + await delivered(store_url)

            async def killer() -> None:
                # kill n comes when the progress crosses its mark, marks spaced 1/40 and 1/8
                # of the filings apart; the killer does not wait for the victim to be ready
                # (a restart is slow next to a fast machine's delivery, and several marks
                # would pass during one), so every mark below the total work is a kill
                nonlocal kills
                mark = await progress()
                for n in itertools.count():
                    victim = gateways[n % len(gateways)]
                    mark += max(1, int(filings * KILL_AFTER_PROGRESS[n % len(KILL_AFTER_PROGRESS)]))
                    while not done.is_set() and await progress() < mark:
                        with anyio.move_on_after(0.1):  # a poll interval
                            await done.wait()
                    if done.is_set():
                        return
                    victim.kill()
                    kills += 1
                    victim.start()

            async with anyio.create_task_group() as tg:
                tg.start_soon(killer)
                for n, i in enumerate(range(0, filings, 100)):
                    batch = evs[i : i + 100]
                    ids = await relkit.post_batch(session, gateways, batch, n)
                    accepted += ids
                    key_of.update(zip(ids, (e["ordering_key"] for e in batch), strict=True))
                end = time.monotonic() + deadline_s
                while time.monotonic() < end and await delivered(store_url) < filings:
                    await anyio.sleep(0.3)
                done.set()
            elapsed = time.monotonic() - started
    finally:
        done.set()
        codes = [g.terminate() for g in gateways]
        await receiver.stop()
    assert await delivered(store_url) == filings, gateways[0].log_tail()
    assert codes == [0] * processes, "a gateway did not shut down cleanly after the storm"
    return receiver, accepted, key_of, kills, elapsed


@pytest.mark.slow
@pytest.mark.timeout(600)  # ~35 s alone on 2 cores; generous for a loaded machine
async def test_sqlite_crash_storm_loses_nothing_and_repeats_only_with_the_same_key(
    tmp_path, figure
):
    """Row 1: serve SIGKILLed after 1/40 or 1/8 of the work since each start; all delivered,
    chain intact."""
    filings = relkit.scale("row1_filings", 10_000)
    db = tmp_path / "gateway.db"
    receiver, accepted, key_of, kills, elapsed = await storm(
        tmp_path,
        f"sqlite:///{db}",
        processes=1,
        filings=filings,
        keys=50,
        deadline_s=relkit.scale("row1_deadline_s", 180),
    )
    _requests, dups = relkit.check_history(receiver.got, accepted, key_of)
    assert len(accepted) == filings
    assert kills >= 20  # the storm happened: one kill per mark below the total work (26)
    assert dups <= kills * CONCURRENCY  # a kill repeats at most the sends it interrupted
    assert relkit.sqlite_integrity(db) == "ok"
    result = await relkit.verify_audit(f"sqlite:///{db}")
    assert result.ok, result
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM filings").fetchone()[0] == filings
    figure(
        "row1",
        f"{filings} filings, {kills} kills, {dups} duplicates (all same Idempotency-Key), "
        f"0 lost, 0 order inversions, integrity ok, {result.rows} audit rows verified, "
        f"{elapsed:.0f}s",
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.postgres
@pytest.mark.services
async def test_postgres_three_process_crash_storm_loses_nothing(tmp_path, figure):
    """Row 2: three serve processes on PostgreSQL, one SIGKILLed at a time; all delivered."""
    filings = relkit.scale("row2_filings", 1500)
    async with fresh_schema() as dsn:
        from gateway.store import postgres

        store = postgres.PostgresStore(dsn)
        await store.open()
        await store.migrate()
        await store.close()
        receiver, accepted, key_of, kills, elapsed = await storm(
            tmp_path,
            dsn,
            processes=3,
            filings=filings,
            keys=50,
            deadline_s=relkit.scale("row2_deadline_s", 180),  # liveness, not speed
        )
        _requests, dups = relkit.check_history(receiver.got, accepted, key_of)
        assert kills >= 20  # one per mark below the total work (26)
        assert dups <= kills * CONCURRENCY
        result = await relkit.verify_audit(dsn)
        assert result.ok, result
    figure(
        "row2",
        f"{filings} filings, 3 processes, {kills} kills, {dups} duplicates (same key), "
        f"0 lost, 0 order inversions, {result.rows} audit rows verified, {elapsed:.0f}s",
    )
