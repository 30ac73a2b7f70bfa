"""Instructions per filing of whole ``serve`` processes, for comparing trees on a noisy machine.

    python -m bench.instructions                      # this tree
    python -m bench.instructions ../oldmain .         # several trees, the first is the baseline

Wall-clock rows and even CPU ms per filing move by tens of percent between two runs a few
minutes apart on a shared 2-core machine (B1 halved between two back-to-back quiet runs
on 2026-12-03). Instructions do not: each tree's ``serve`` runs under valgrind's callgrind
(every thread: the event loop, the SQLite writer, the adapter's workers), takes ``small``
and then ``large`` filings over HTTP (``POST /v1/filings``, 8 connections) on a fresh SQLite
store with a no-op adapter, and is stopped once all are delivered. The slope between the two
runs is the instructions one filing costs, ingest and delivery, with start-up cancelled out.
What the process does while idle (timers, the dispatcher's wake-ups) is measured apart
(``idle`` seconds after ready) and taken off each run's share of the wall time, which
valgrind stretches ~50x.

Each tree runs with its own virtualenv (``<tree>/.venv``, ``make .venv/.installed-bench``)
and its own ``bench.procs``; this file is run by path, so the other tree need not have it.
A tool for comparisons, not a ``make bench`` row: about 5 minutes per tree.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BODY = (
    '{"filing_type":"isf","environment":"cert","reference":"ISF-INS-%d","filer_code":"XYZ",'
    '"idempotency_key":"ins-%d","payload":{"isf_type":"10+2","bill_of_lading":"MAEU%d",'
    '"seller":{"name":"Shenzhen Widgets Co","country":"CN"},'
    '"buyer":{"name":"Acme Imports LLC","country":"US"},"hts":["8471.30.0100"]},'
    '"metadata":{"source_system":"bench"}}'
)
KEY = "bench-only-key-0123456789abcdef0123456789abcdef"


def _totals(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"{path}: no totals line (did callgrind finish?)")


def _child(n: int, idle_s: float, out: Path) -> None:
    """In the tree under test (cwd, its venv): one serve under callgrind; prints JSON."""
    sys.path[0] = os.getcwd()  # not this file's folder: bench/profile.py would shadow stdlib's
    import aiohttp

    from bench import procs  # the tree's own

    async def post_all(url: str) -> None:
        numbers = iter(range(n))
        async with aiohttp.ClientSession() as session:

            async def client() -> None:
                for i in numbers:
                    data = BODY % (i, i, i)
                    headers = {"Content-Type": "application/json"}
                    async with session.post(f"{url}/v1/filings", data=data, headers=headers) as r:
                        if r.status != 202:
                            raise RuntimeError(f"filing {i}: HTTP {r.status}: {await r.text()}")

            await asyncio.gather(*(client() for _ in range(8)))

    cli = "gateway.cli.main" if Path("gateway/cli/main.py").exists() else "gateway.cli"
    with tempfile.TemporaryDirectory(prefix="edigw-ins-") as tmp:
        d = Path(tmp)
        url = procs.sqlite_url(d / "gw.db")
        port = procs.free_port()
        cfg = procs.write_config(procs.GatewaySpec(store=url), d, port, "gw")
        env = {**os.environ, "PYTHONPATH": str(procs.ROOT), "EDIGW_AUDIT__HMAC_KEY": KEY}
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no"]
        cmd += [sys.executable, "-m", cli, "serve", "--config", str(cfg)]
        with (d / "serve.log").open("w") as log:
            p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(d))
        try:
            procs.wait_http(f"http://127.0.0.1:{port}/readyz", 900, p)
            t0 = time.monotonic()
            if n:
                asyncio.run(post_all(f"http://127.0.0.1:{port}"))
                done = asyncio.run(procs.wait_delivered(url, n, 1800))
                if done < n:
                    raise RuntimeError(f"{done} of {n} delivered")
            else:
                time.sleep(idle_s)
            wall = time.monotonic() - t0
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(900)
    print(json.dumps({"n": n, "wall_s": wall, "instructions": _totals(out)}))


def measure(tree: Path, small: int, large: int, idle_s: float) -> dict[str, Any]:
    """One tree's slope, idle rate and net instructions per filing."""
    python = tree / ".venv" / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{tree}: no .venv (run `make .venv/.installed-bench` there)")
    # byte-compile first: a module compiled during a measured start-up adds its compile
    subprocess.run(
        [str(python), "-m", "compileall", "-q", "gateway", "adapters", "bench"], cwd=tree
    )
    runs = []
    with tempfile.TemporaryDirectory(prefix="edigw-ins-out-") as tmp:
        for i, (n, idle) in enumerate(((0, 0.0), (0, idle_s), (small, 0.0), (large, 0.0))):
            out = Path(tmp) / f"cg{i}.out"
            args = [
                str(python),
                str(Path(__file__).resolve()),
                "_child",
                str(n),
                str(idle),
                str(out),
            ]
            got = subprocess.run(args, cwd=tree, capture_output=True, text=True)
            if got.returncode != 0:
                raise SystemExit(f"{tree}: run {n} failed:\n{got.stderr[-2000:]}")
            runs.append(json.loads(got.stdout.strip().splitlines()[-1]))
            print(f"  {tree}: n={n} idle={idle:g}s -> {runs[-1]}", file=sys.stderr)
    start, idle, lo, hi = runs
    idle_rate = (idle["instructions"] - start["instructions"]) / max(idle["wall_s"], 1e-9)
    raw = (hi["instructions"] - lo["instructions"]) / (large - small)
    net = raw - idle_rate * (hi["wall_s"] - lo["wall_s"]) / (large - small)
    return {
        "tree": str(tree),
        "commit": _commit(tree),
        "start_up": start["instructions"],
        "idle_per_s": idle_rate,
        "per_filing_raw": raw,
        "per_filing": net,
    }


def _commit(tree: Path) -> str:
    got = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True
    )
    return got.stdout.strip() or "?"


def main(argv: list[str]) -> int:
    if argv[:1] == ["_child"]:
        _child(int(argv[1]), float(argv[2]), Path(argv[3]))
        return 0
    ap = argparse.ArgumentParser(prog="bench.instructions")
    ap.add_argument("trees", nargs="*", type=Path, help="work trees (default: this one)")
    ap.add_argument("--small", type=int, default=200, help="filings of the first run")
    ap.add_argument("--large", type=int, default=600, help="filings of the second run")
    ap.add_argument("--idle", type=float, default=40.0, help="seconds of the idle run")
    args = ap.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("bench.instructions: valgrind is not installed (apt-get install -y valgrind)")
        return 2
    if not 0 < args.small < args.large:
        print("bench.instructions: --small must be > 0 and below --large")
        return 2
    trees = [t.resolve() for t in (args.trees or [Path(__file__).resolve().parent.parent])]
    found = [measure(t, args.small, args.large, args.idle) for t in trees]
    base = found[0]["per_filing"]
    print(f"{'tree':40} {'commit':9} {'per filing':>12} {'raw':>12} {'idle/s':>10} {'vs first':>9}")
    for f in found:
        print(
            f"{f['tree'][-40:]:40} {f['commit']:9} {f['per_filing'] / 1e6:10.3f} M "
            f"{f['per_filing_raw'] / 1e6:10.3f} M {f['idle_per_s'] / 1e6:8.2f} M "
            f"{(f['per_filing'] / base - 1) * 100:+8.1f}%"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
