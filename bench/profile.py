"""Where one ``serve`` process spends its CPU, per thread and per function (SQLite).

    python -m bench.profile ingest [--n 3000] [--cprofile]   # POST n filings, wait delivered
    python -m bench.profile drain  [--n 10000] [--cprofile]  # deliver a preloaded backlog

Prints CPU ms per delivered filing for the whole process and for each thread (the event
loop's and the SQLite writer's), measured from ``/proc`` after start-up; with
``--cprofile`` the process runs under cProfile and the functions with the most cumulative
and own time follow (cProfile inflates small calls several times: compare runs with each
other, never with the unprofiled figure). cProfile sees the event loop's thread only.
A tool for before/after comparisons on one machine, not a table row.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench.profile")
    ap.add_argument("mode", choices=["ingest", "drain"])
    ap.add_argument("--n", type=int, default=0, help="filings (3000 ingest, 10000 drain)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--cprofile", action="store_true", help="run serve under cProfile")
    ap.add_argument("--top", type=int, default=40, help="functions listed per ordering")
    args = ap.parse_args(argv)
    n = args.n or (3000 if args.mode == "ingest" else 10_000)
    with tempfile.TemporaryDirectory(prefix="edigw-profile-") as tmp:
        d = Path(tmp)
        url = procs.sqlite_url(d / "gw.db")
        if args.mode == "drain":
            asyncio.run(procs.migrate(url))
            asyncio.run(procs.preload(url, n))
        port = procs.free_port()
        cfg = procs.write_config(procs.GatewaySpec(store=url), d, port, "gw")
        prof = d / "serve.prof"
        python = [sys.executable]
        if args.cprofile:
            python += ["-m", "cProfile", "-o", str(prof)]
        env = {
            **os.environ,
            "PYTHONPATH": str(procs.ROOT),
            "EDIGW_AUDIT__HMAC_KEY": "bench-only-key-0123456789abcdef0123456789abcdef",
        }
        with (d / "gw.log").open("w") as log:
            p = subprocess.Popen(
                [*python, "-m", "gateway.cli.main", "serve", "--config", str(cfg)],
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
            for order in ("cumulative", "tottime"):
                print(f"\n--- by {order} (event loop thread, under cProfile) ---")
                stats.sort_stats(order).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
