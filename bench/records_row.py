"""Row R1 (issue 20): durable ingest with the records mover running vs without.

Both runs start from the same store: ``PRELOAD`` filings finished 30 days ago (cert: past
their 7-day live period), so in the second run the mover archives all run long (a round of
``BATCH`` filings every ``1s`` or at once after a full round: read, segment built and put
in a worker thread with fsync, delete transaction). wrk posts ISF events as in row 1. The
figure is the ingest rate with the mover; the baseline the rate without; the issue's target
is ≥ 0.9. The note says how many filings the mover archived during the run.

Registered in ``bench/scenarios.py``'s ``ALL`` as ``records_row.records_ingest``; run alone
with ``make bench BENCH_ARGS="--only records_ingest"``.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from bench import procs, wrk
from bench.scenarios import Ctx, per_ms, row, running

PRELOAD = 20_000
BATCH = 1000
_DAY_US = 86_400 * 1_000_000


async def _prepared(ctx: Ctx, name: str) -> tuple[Path, str]:
    """A migrated SQLite store holding PRELOAD filings delivered 30 days ago."""
    from gateway.store import sqlite as store_sqlite

    d = ctx.fresh_dir(name)
    db = d / "gw.db"
    store = store_sqlite.SqliteStore(db)
    await store.open()
    try:
        await store.migrate()
    finally:
        await store.close()
    url = procs.sqlite_url(db)
    await procs.preload(url, PRELOAD, state="delivered")
    old = int(time.time() * 1e6) - 30 * _DAY_US
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.execute(
            "UPDATE filings SET status = 'delivered', received_at = ?1, updated_at = ?1", (old,)
        )
        conn.execute("UPDATE deliveries SET updated_at = ?1, delivered_at = ?1", (old,))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return d, url


def _archived(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(
            conn.execute("SELECT coalesce(sum(records), 0) FROM record_segments").fetchone()[0]
        )
    finally:
        conn.close()


async def _ingest(ctx: Ctx, *, mover: bool) -> tuple[wrk.WrkResult, float | None, int]:
    d, url = await _prepared(ctx, "records-mover" if mover else "records-none")
    settings = {
        "EDIGW_RECORDS__ENABLED": "true" if mover else "false",
        "EDIGW_RECORDS__DIR": str(d / "records"),
        "EDIGW_RECORDS__INTERVAL": "1s",
        "EDIGW_RECORDS__BATCH_FILINGS": str(BATCH),
    }
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)  # the gateway's config, by its EDIGW_ overrides
    try:
        p = procs.start_gateway(procs.GatewaySpec(store=url, workers=ctx.workers), d)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    with running(p):
        before = _archived(d / "gw.db")
        res = wrk.run(p.url, duration_s=ctx.duration_s, connections=ctx.connections)
        moved = _archived(d / "gw.db") - before
        cpu = per_ms(p.cpu_used(), max(1, res.requests - res.non2xx))
    return res, cpu, moved


async def records_ingest(ctx: Ctx) -> list[dict[str, Any]]:
    # off, on, on, off: a drift of the machine's load over the four runs cancels out
    runs = [await _ingest(ctx, mover=m) for m in (False, True, True, False)]
    off = [runs[0], runs[3]]
    on = [runs[1], runs[2]]
    rate_off = sum(r.ok_rps for r, _, _ in off) / 2
    rate_on = sum(r.ok_rps for r, _, _ in on) / 2
    ratio = rate_on / rate_off if rate_off else 0.0
    return [
        row(
            "R1",
            "durable ingest, SQLite, with the records mover archiving (issue 20)",
            rate_on,
            "202/s",
            baseline=rate_off,
            baseline_what="same store, mover off",
            ratio=ratio,
            target="≥ 0.9",
            met=ratio >= 0.9,
            cpu_ms=on[0][1],
            note=f"mean of 2 runs each (off, on, on, off); archived during the runs: "
            f"{[m for _, _, m in on]} filings (batches of {BATCH}); p99 "
            f"{[round(r.p99_ms) for r, _, _ in on]} ms vs {[round(r.p99_ms) for r, _, _ in off]}; "
            f"rates on {[round(r.ok_rps) for r, _, _ in on]}, off "
            f"{[round(r.ok_rps) for r, _, _ in off]}; CPU ms/202 off {off[0][1]}",
        )
    ]
