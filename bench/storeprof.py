"""The store alone, in one process: CPU per filing of accept, and of claim + complete.

    python -m bench.storeprof sqlite [--n 3000] [--callers 32] [--rounds 3] [--cprofile]
    python -m bench.storeprof pg     [--n 3000] ...    # a fresh database on EDIGW_BENCH_PG

No HTTP, no dispatcher, no adapter: ``callers`` concurrent tasks accept one normalized
filing each (as ``POST /v1/filings`` does), then the backlog is claimed in batches of 500
and every claim completed concurrently (as the dispatcher's send workers do). The CPU is
this process's, all threads (the SQLite writer's included), from ``time.process_time``,
and of the event loop's thread alone (``… loop``);
for PostgreSQL the backends' too (``procs.PgCpu``). Each round is a fresh database; the
lowest figure of the rounds is printed beside the median (the machine is shared: the
lowest is the least disturbed). Runs on the old main too (the store before issue 17), to
compare the two store layers on their own.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import procs
from bench.profile import BODY

try:  # the one store (issue 17)
    from gateway import values as shapes
    from gateway.rules import normalize
    from gateway.store.open import open_store
except ImportError:  # the old main
    from gateway import normalize  # type: ignore[attr-defined,no-redef]
    from gateway.store import base as shapes  # type: ignore[no-redef]
    from gateway.store.base import open_store  # type: ignore[attr-defined,no-redef]
from gateway import ids, models


def filings(n: int, tag: str) -> list[shapes.NewFiling]:
    out = []
    for i in range(n):
        text = BODY % (i, i, i)
        event = models.FilingEvent.model_validate_json(text.replace("prof-", f"prof-{tag}-"))
        f = normalize.normalize(
            event, filing_id=ids.new_id("fil"), received_at=datetime.now(UTC), source="api"
        )
        out.append(shapes.NewFiling(filing=f, adapters=["noop"]))
    return out


async def one_round(url: str, n: int, callers: int, prof: cProfile.Profile | None) -> list[float]:
    store = open_store(url)
    await store.open()
    try:
        await store.migrate()
        items = filings(n, str(time.monotonic_ns()))
        actor = shapes.Actor(name="bench")
        db = procs.PgCpu(url.rsplit("/", 1)[1]) if url.startswith("postgresql") else None
        todo = iter(items)

        async def caller() -> None:
            for item in todo:
                [r] = await store.accept([item], actor=actor, now=datetime.now(UTC))
                assert r.created

        async def drain() -> int:
            done = 0
            while True:
                now = datetime.now(UTC)
                claims = await store.claim(owner="bench", now=now, lease_s=60, limits={"noop": 500})
                if not claims:
                    return done
                receipt = {"status": "sent", "transport_id": "t"}
                ok = await asyncio.gather(
                    *(store.complete(c, now=datetime.now(UTC), receipt=receipt) for c in claims)
                )
                done += sum(ok)

        figures = []
        for phase in ("accept", "drain"):
            if db is not None:
                db.begin()
            if prof is not None:
                prof.enable()
            t0, m0 = time.process_time(), time.thread_time()
            if phase == "accept":
                await asyncio.gather(*(caller() for _ in range(callers)))
            else:
                assert await drain() == n
            used = time.process_time() - t0
            main_used = time.thread_time() - m0
            if prof is not None:
                prof.disable()
            figures += [used * 1e3 / n, main_used * 1e3 / n]
            if db is not None:
                db.end()
                figures.append(db.backends_s * 1e3 / n)
        return figures
    finally:
        await store.close()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench.storeprof")
    ap.add_argument("backend", choices=["sqlite", "pg"])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--callers", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cprofile", action="store_true")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args(argv)
    # CPU time of the profiled thread, not wall time: the threads share two busy cores
    prof = cProfile.Profile(time.thread_time) if args.cprofile else None
    writer = cProfile.Profile(time.thread_time) if args.cprofile else None
    if writer is not None:  # the SQLite writer thread's group commits, profiled apart
        from gateway.store import sqlite_conn

        group = sqlite_conn.run_group

        def profiled(*a: Any) -> None:
            writer.runcall(group, *a)

        sqlite_conn.run_group = profiled  # type: ignore[assignment]
    rounds = []
    with tempfile.TemporaryDirectory(prefix="edigw-storeprof-") as tmp:
        for r in range(args.rounds):
            if args.backend == "sqlite":
                url = procs.sqlite_url(Path(tmp) / f"r{r}.db")
            else:
                admin = os.environ.get(
                    "EDIGW_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
                )
                url = asyncio.run(
                    procs.fresh_pg(admin, os.environ.get("EDIGW_PROFILE_PG_DB", "edigw_storeprof"))
                )
            rounds.append(asyncio.run(one_round(url, args.n, args.callers, prof)))
    names = ["accept", "accept loop", "drain", "drain loop"]
    if args.backend == "pg":
        names = ["accept", "accept loop", "accept db", "drain", "drain loop", "drain db"]
    out: dict[str, Any] = {}
    for i, name in enumerate(names):
        col = [r[i] for r in rounds]
        out[name] = {"min": round(min(col), 4), "median": round(statistics.median(col), 4)}
    print(f"storeprof {args.backend} n={args.n} callers={args.callers} CPU ms/filing:")
    print(json.dumps(out))
    for what, p in (("event loop", prof), ("SQLite writer", writer)):
        if p is None or (what == "SQLite writer" and args.backend != "sqlite"):
            continue
        stats = pstats.Stats(p)
        for order in ("cumulative", "tottime"):
            print(f"\n--- {what} thread, by {order} ---")
            stats.sort_stats(order).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
