"""Where ``serve`` spends its CPU, per thread and per function; and the database's.

    python -m bench.profile ingest [--n 3000] [--cprofile]   # POST n filings, wait delivered
    python -m bench.profile drain  [--n 10000] [--cprofile]  # deliver a preloaded backlog
    python -m bench.profile pg-drain [--n 10000] [--procs 2] [--count]  # the same, PostgreSQL

Prints CPU ms per delivered filing for the whole process and for each thread (the event
loop's and the SQLite writer's), measured from ``/proc`` after start-up; with
``--cprofile`` the process runs under cProfile, timed by the event loop thread's CPU (not
wall time, which on a busy machine charges every syscall with the wait for a core), and
the functions with the most cumulative and own time follow (cProfile inflates small calls
several times: compare runs with each other, never with the unprofiled figure).
``pg-drain`` (row 6's work: ``--procs`` processes drain a preloaded backlog on a fresh
database, ``EDIGW_BENCH_PG`` or the local server, named by ``EDIGW_PROFILE_PG_DB``) prints
the CPU per delivery of each gateway process and of the PostgreSQL backends serving them
(``procs.PgCpu``); the backlog becomes due a few seconds after the processes are ready, so
start-up is left out. With ``--count`` the processes log every statement they send through
asyncpg (a query logger, so their CPU is not the figure then) and the statements per
delivery are printed by kind.
A tool for before/after comparisons on one machine, not a table row.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import collections
import importlib.util
import json
import os
import pstats
import runpy
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench import procs

_TICK = os.sysconf("SC_CLK_TCK")

BODY = (
    '{"filing_type":"isf","environment":"cert","reference":"ISF-PROF-%d","filer_code":"XYZ",'
    '"idempotency_key":"prof-%d","payload":{"isf_type":"10+2","bill_of_lading":"MAEU%d",'
    '"seller":{"name":"Shenzhen Widgets Co","country":"CN"},'
    '"buyer":{"name":"Acme Imports LLC","country":"US"},"hts":["8471.30.0100"]},'
    '"metadata":{"source_system":"bench"}}'
)


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of ``pid`` (by thread id)."""
    out: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[tid] = (int(fields[11]) + int(fields[12])) / _TICK
    return out


async def post_all(url: str, n: int, connections: int) -> float:
    """POST ``n`` distinct filings over ``connections`` connections; returns the seconds."""
    numbers = iter(range(n))
    async with aiohttp.ClientSession() as session:

        async def client() -> None:
            for i in numbers:
                async with session.post(
                    f"{url}/v1/filings",
                    data=BODY % (i, i, i),
                    headers={"Content-Type": "application/json"},
                ) as r:
                    if r.status != 202:
                        raise RuntimeError(f"filing {i}: HTTP {r.status}: {await r.text()}")

        t0 = time.monotonic()
        await asyncio.gather(*(client() for _ in range(connections)))
        return time.monotonic() - t0


def _cli_module() -> str:
    """``gateway.cli.main``; ``gateway.cli`` before it was a package (the old main)."""
    cli = importlib.util.find_spec("gateway.cli")
    return "gateway.cli.main" if cli and cli.submodule_search_locations else "gateway.cli"


def _kind(query: str) -> str:
    """A statement's kind for the count: its first words, or the query block it is."""
    words = " ".join(query.split())
    for marker in ("pg_advisory_xact_lock", "pg_notify", "audit", "UPDATE filings"):
        if marker in words:
            return f"{words[:28]}… ({marker})"
    return words[:48]


def _serve_profiled(argv: list[str]) -> None:
    """``serve`` under cProfile timed by the event loop thread's CPU (``time.thread_time``),
    not wall time: on a loaded machine a wall-clock profile charges every syscall with the
    time the process waited for a core. Writes the stats to $PROFILE_STATS at exit."""
    import cProfile

    prof = cProfile.Profile(time.thread_time)
    atexit.register(lambda: (prof.disable(), prof.dump_stats(os.environ["PROFILE_STATS"])))
    sys.argv = ["edi-gateway", "serve", *argv]
    prof.enable()
    runpy.run_module(_cli_module(), run_name="__main__")


def _serve_counting(argv: list[str]) -> None:
    """``serve`` with a query logger on every asyncpg connection; counts to $PROFILE_COUNTS."""
    import asyncpg

    counts: collections.Counter[str] = collections.Counter()
    init = asyncpg.connection.Connection.__init__

    def patched(self: Any, *a: Any, **kw: Any) -> None:
        init(self, *a, **kw)
        self.add_query_logger(lambda rec: counts.update([_kind(rec.query)]))

    asyncpg.connection.Connection.__init__ = patched  # type: ignore[method-assign]
    out = os.environ["PROFILE_COUNTS"]
    atexit.register(lambda: Path(out).write_text(json.dumps(counts)))
    sys.argv = ["edi-gateway", "serve", *argv]
    runpy.run_module(_cli_module(), run_name="__main__")


async def _fresh_pg(name: str) -> str:
    admin = os.environ.get("EDIGW_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    url = await procs.fresh_pg(admin, name)
    try:
        from gateway.store import open as store_open  # the one store
    except ImportError:  # before issue 17
        from gateway.store import base as store_open  # type: ignore[no-redef]
    store = store_open.open_store(url)
    await store.open()
    try:
        await store.migrate()
    finally:
        await store.close()
    return url


def pg_drain(args: argparse.Namespace, n: int, d: Path) -> None:
    url = asyncio.run(_fresh_pg(os.environ.get("EDIGW_PROFILE_PG_DB", "edigw_profile_pg")))
    lead_s = 8.0  # the backlog falls due this long after the preload: start-up left out
    asyncio.run(procs.preload(url, n, available_in_s=lead_s))
    due = time.monotonic() + lead_s
    env = {
        **os.environ,
        "PYTHONPATH": str(procs.ROOT),
        "EDIGW_AUDIT__HMAC_KEY": "bench-only-key-0123456789abcdef0123456789abcdef",
    }
    ps: list[tuple[subprocess.Popen[bytes], int, Path]] = []
    for i in range(args.procs):
        port = procs.free_port()
        cfg = procs.write_config(procs.GatewaySpec(store=url), d, port, f"gw{i}")
        counts = d / f"counts{i}.json"
        if args.count:
            cmd = [sys.executable, "-m", "bench.profile", "_serve-counting", "--config", str(cfg)]
        else:
            cmd = [sys.executable, "-m", _cli_module(), "serve", "--config", str(cfg)]
        with (d / f"gw{i}.log").open("w") as log:
            p = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**env, "PROFILE_COUNTS": str(counts)},
                cwd=str(d),
            )
        ps.append((p, port, counts))
    db = procs.PgCpu(url.rsplit("/", 1)[1])
    try:
        for p, port, _ in ps:
            procs.wait_http(f"http://127.0.0.1:{port}/readyz", 60, p)
        if time.monotonic() > due - 1:
            print("warning: the processes were ready after the backlog fell due")
        before = [procs.cpu_seconds(p.pid) for p, _, _ in ps]
        db.begin()
        t0 = time.monotonic()
        done = asyncio.run(procs.wait_delivered(url, n, 600))
        wall = time.monotonic() - t0
        after = [procs.cpu_seconds(p.pid) for p, _, _ in ps]
        db.end()
    finally:
        for p, _, _ in ps:
            p.send_signal(signal.SIGTERM)
        for p, _, _ in ps:
            p.wait(60)
    gw = [(a - b) * 1000 / n for a, b in zip(after, before, strict=True)]
    times = [t for _, t in asyncio.run(procs.delivery_times(url))]
    span = (max(times) - min(times)) / 1e6 if times else 0.0
    print(
        f"pg-drain: {done} delivered by {args.procs} processes, {len(times) / (span or 1):,.0f}/s "
        f"over the drain's span ({wall:.1f} s with the wait for due); CPU ms/delivery: "
        f"gateway {sum(gw):.3f} ({', '.join(f'{g:.3f}' for g in gw)})"
        f", postgres backends {db.backends_s * 1000 / n:.3f}, server background (all "
        f"databases) {db.shared_s * 1000 / n:.3f}"
    )
    if args.count:
        total: collections.Counter[str] = collections.Counter()
        for _, _, counts in ps:
            total.update(json.loads(counts.read_text()))
        print(f"statements per delivery: {sum(total.values()) / n:.2f} in all")
        for what, c in total.most_common():
            print(f"  {c / n:7.3f}  {c:7d}  {what}")


def main(argv: list[str]) -> int:
    if argv[:1] == ["_serve-profiled"]:
        _serve_profiled(argv[1:])
        return 0
    if argv[:1] == ["_serve-counting"]:
        _serve_counting(argv[1:])
        return 0
    ap = argparse.ArgumentParser(prog="bench.profile")
    ap.add_argument("mode", choices=["ingest", "drain", "pg-drain"])
    ap.add_argument("--procs", type=int, default=2, help="pg-drain: serve processes")
    ap.add_argument("--count", action="store_true", help="pg-drain: count the statements")
    ap.add_argument("--n", type=int, default=0, help="filings (3000 ingest, 10000 drain)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--cprofile", action="store_true", help="run serve under cProfile")
    ap.add_argument("--top", type=int, default=40, help="functions listed per ordering")
    ap.add_argument("--save", type=Path, help="--cprofile: keep the stats file here (pstats)")
    args = ap.parse_args(argv)
    n = args.n or (3000 if args.mode == "ingest" else 10_000)
    with tempfile.TemporaryDirectory(prefix="edigw-profile-") as tmp:
        d = Path(tmp)
        if args.mode == "pg-drain":
            pg_drain(args, n, d)
            return 0
        url = procs.sqlite_url(d / "gw.db")
        if args.mode == "drain":
            asyncio.run(procs.migrate(url))
            asyncio.run(procs.preload(url, n))
        port = procs.free_port()
        cfg = procs.write_config(procs.GatewaySpec(store=url), d, port, "gw")
        prof = d / "serve.prof"
        serve = [sys.executable, "-m", _cli_module(), "serve"]
        if args.cprofile:
            serve = [sys.executable, "-m", "bench.profile", "_serve-profiled"]
        env = {
            **os.environ,
            "PYTHONPATH": str(procs.ROOT),
            "EDIGW_AUDIT__HMAC_KEY": "bench-only-key-0123456789abcdef0123456789abcdef",
            "PROFILE_STATS": str(prof),
        }
        with (d / "gw.log").open("w") as log:
            p = subprocess.Popen(
                [*serve, "--config", str(cfg)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(d),
            )
        try:
            procs.wait_http(f"http://127.0.0.1:{port}/readyz", 60, p)
            before = thread_cpu(p.pid)
            t0 = time.monotonic()
            if args.mode == "ingest":
                took = asyncio.run(post_all(f"http://127.0.0.1:{port}", n, args.connections))
                print(f"ingest: {n / took:,.0f} 202/s over {args.connections} connections")
            done = asyncio.run(procs.wait_delivered(url, n, 300))
            wall = time.monotonic() - t0
            after = thread_cpu(p.pid)
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(60)
        used = {t: after[t] - before.get(t, 0.0) for t in after}
        total = sum(used.values())
        per = total * 1000 / n
        print(f"{args.mode}: {done} delivered in {wall:.1f} s; CPU {per:.3f} ms/filing")
        for tid, cpu in sorted(used.items(), key=lambda kv: -kv[1]):
            if cpu >= 0.01:
                what = "main (event loop)" if tid == str(p.pid) else "other (SQLite writer, …)"
                print(f"  thread {tid} {what}: {cpu * 1000 / n:.3f} ms/filing")
        if args.cprofile:
            stats = pstats.Stats(str(prof))
            if args.save:
                stats.dump_stats(str(args.save))
            for order in ("cumulative", "tottime"):
                print(f"\n--- by {order} (event loop thread, under cProfile) ---")
                stats.sort_stats(order).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
