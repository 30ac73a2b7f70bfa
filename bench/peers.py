"""Baselines B2 (raw store ceiling) and B3 (pgqueuer, procrastinate) on the same machine.

B2 is the least a durable queue must do per message, batched: insert 100 rows per
transaction, claim 100 per transaction, complete 100 per transaction, with the same
durability as the gateway (SQLite WAL + synchronous=FULL; PostgreSQL defaults, i.e.
``synchronous_commit=on``).

B3 uses each peer at the settings its own documentation and benchmark tool use:
pgqueuer's ``tools/benchmark.py`` drains with 5 dequeue tasks (one connection each) and
batch size 10 in ``QueueExecutionMode.drain`` and enqueues in batches; we also try a
batch size of 100 and keep the faster. procrastinate: ``batch_defer_async`` to enqueue,
one worker with ``concurrency=10`` and LISTEN/NOTIFY (its documented fast path).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

PAYLOAD = b'{"isf_type":"10+2","bill_of_lading":"MAEU123456789","note":"' + b"x" * 240 + b'"}'
BATCH = 100


def b2_sqlite(path: Path, n: int) -> float:
    """Messages per second through insert + claim + complete, 100 per transaction."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY, payload BLOB NOT NULL, state TEXT NOT NULL, "
        "owner TEXT, updated INTEGER)"
    )
    conn.execute("CREATE INDEX jobs_pending ON jobs (id) WHERE state = 'pending'")
    t0 = time.perf_counter()
    for i in range(0, n, BATCH):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO jobs (payload, state) VALUES (?, 'pending')",
            [(PAYLOAD,)] * min(BATCH, n - i),
        )
        conn.execute("COMMIT")
    done = 0
    while done < n:
        conn.execute("BEGIN IMMEDIATE")
        got = conn.execute(
            "UPDATE jobs SET state = 'running', owner = 'b2', updated = 1 WHERE id IN "
            "(SELECT id FROM jobs WHERE state = 'pending' ORDER BY id LIMIT ?) "
            "RETURNING id, payload",
            (BATCH,),
        ).fetchall()
        conn.execute("COMMIT")
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "UPDATE jobs SET state = 'done', updated = 2 WHERE id = ?", [(r[0],) for r in got]
        )
        conn.execute("COMMIT")
        done += len(got)
    elapsed = time.perf_counter() - t0
    conn.close()
    return n / elapsed


async def b2_postgres(dsn: str, n: int) -> float:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE TABLE jobs (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "payload BYTEA NOT NULL, state TEXT NOT NULL, owner TEXT, updated BIGINT)"
        )
        await conn.execute("CREATE INDEX jobs_pending ON jobs (id) WHERE state = 'pending'")
        t0 = time.perf_counter()
        for i in range(0, n, BATCH):
            k = min(BATCH, n - i)
            await conn.execute(
                "INSERT INTO jobs (payload, state) SELECT p, 'pending' FROM unnest($1::bytea[]) p",
                [PAYLOAD] * k,
            )
        done = 0
        while done < n:
            got = await conn.fetch(
                "UPDATE jobs SET state = 'running', owner = 'b2', updated = 1 WHERE id IN "
                "(SELECT id FROM jobs WHERE state = 'pending' ORDER BY id LIMIT $1 "
                "FOR UPDATE SKIP LOCKED) RETURNING id, payload",
                BATCH,
            )
            await conn.execute(
                "UPDATE jobs SET state = 'done', updated = 2 WHERE id = ANY($1::bigint[])",
                [r[0] for r in got],
            )
            done += len(got)
        return n / (time.perf_counter() - t0)
    finally:
        await conn.close()


async def _pgq_enqueue(dsn: str, n: int) -> None:
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries

    conn = await asyncpg.connect(dsn)
    try:
        q = Queries(AsyncpgDriver(conn))
        await q.install()
        for i in range(0, n, 1000):
            k = min(1000, n - i)
            await q.enqueue(["noop"] * k, [PAYLOAD] * k, [0] * k)
    finally:
        await conn.close()


async def _pgq_consumers(dsn: str, consumers: int, batch: int, counter: list[int]) -> list:
    import asyncpg
    from pgqueuer import AsyncpgDriver, PgQueuer

    managers = []
    for _ in range(consumers):
        conn = await asyncpg.connect(dsn)
        pgq = PgQueuer(AsyncpgDriver(conn))

        @pgq.entrypoint("noop")
        async def noop(job: object) -> None:
            counter[0] += 1

        managers.append((pgq, conn))
    return managers


async def b3_pgqueuer_drain(dsn: str, n: int, batch: int = 10, consumers: int = 5) -> float:
    """pgqueuer: enqueue ``n`` jobs (not timed), then drain them with no-op handlers."""
    from pgqueuer.domain.types import QueueExecutionMode

    await _pgq_enqueue(dsn, n)
    counter = [0]
    managers = await _pgq_consumers(dsn, consumers, batch, counter)
    t0 = time.perf_counter()
    try:
        await asyncio.gather(
            *(
                pgq.run(
                    batch_size=batch,
                    mode=QueueExecutionMode.drain,
                    dequeue_timeout=timedelta(seconds=0.5),
                )
                for pgq, _ in managers
            )
        )
    finally:
        for _, conn in managers:
            await conn.close()
    elapsed = time.perf_counter() - t0
    return counter[0] / elapsed


async def b3_pgqueuer_sustained(dsn: str, seconds: float, batch: int = 10) -> float:
    """pgqueuer: one producer (batches of 10) beside 5 consumers; processed per second."""
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries

    await _pgq_enqueue(dsn, 0)
    counter = [0]
    managers = await _pgq_consumers(dsn, 5, batch, counter)
    stop = asyncio.Event()
    conn = await asyncpg.connect(dsn)
    q = Queries(AsyncpgDriver(conn))

    async def produce() -> None:
        while not stop.is_set():
            await q.enqueue(["noop"] * 10, [PAYLOAD] * 10, [0] * 10)

    tasks = [asyncio.create_task(pgq.run(batch_size=batch)) for pgq, _ in managers]
    prod = asyncio.create_task(produce())
    await asyncio.sleep(2)  # warm-up
    start_count, t0 = counter[0], time.perf_counter()
    await asyncio.sleep(seconds)
    rate = (counter[0] - start_count) / (time.perf_counter() - t0)
    stop.set()
    await prod
    for pgq, _ in managers:
        pgq.shutdown.set()
    await asyncio.wait(tasks, timeout=10)
    for _, c in managers:
        await c.close()
    await conn.close()
    return rate


async def b3_procrastinate_drain(dsn: str, n: int) -> float:
    """procrastinate: ``batch_defer_async`` ``n`` jobs, then one worker drains them."""
    import procrastinate

    conninfo = dsn
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))
    counter = [0]

    @app.task(name="noop", queue="bench")
    async def noop(payload: str) -> None:
        counter[0] += 1

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        text = PAYLOAD.decode()
        for i in range(0, n, 1000):
            await noop.batch_defer_async(*({"payload": text} for _ in range(min(1000, n - i))))
        t0 = time.perf_counter()
        await app.run_worker_async(queues=["bench"], concurrency=10, wait=False)
        elapsed = time.perf_counter() - t0
    return counter[0] / elapsed
