"""``make bench``: run every scenario, print the table, write it as JSON.

Exits non-zero only when the harness cannot run (no wrk, a baseline that fails); a row
that misses its target, or that cannot run on this branch (say, a store that refuses to
start), is reported in the table, never as a failure.

    python -m bench.run [--pg DSN] [--long] [--only ROW,ROW] [--duration S]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from bench import fairness_row, procs, records_million, records_row, scenarios, wrk

RESULTS = procs.ROOT / "bench" / "results"


def fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.{digits}f}"
    return str(v)


def cpu_cell(r: dict[str, Any]) -> str:
    """CPU ms per delivered filing: the gateway's, plus the database's on PostgreSQL rows."""
    gw, db = r.get("cpu_ms"), r.get("db_cpu_ms")
    if gw is None:
        return "-"
    return f"{gw:.3f}" + (f" + db {db:.3f}" if db is not None else "")


def table(rows: list[dict[str, Any]]) -> str:
    head = ["row", "what", "figure", "unit", "baseline", "ratio", "target", "met", "CPU ms"]
    head += ["note"]
    body = [
        [
            r["row"],
            r["what"],
            fmt(r.get("figure")),
            r.get("unit", ""),
            (fmt(r.get("baseline")) + f" ({r['baseline_what']})") if r.get("baseline") else "-",
            fmt(r.get("ratio")),
            r.get("target", "-"),
            fmt(r.get("met")) if "met" in r else "-",
            cpu_cell(r),
            str(r.get("note", "")).replace("\n", " ").replace("|", "/"),
        ]
        for r in rows
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in b) + " |" for b in body]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_at_start": loadavg(),
    }


def loadavg() -> str:
    """The 1/5/15-minute load averages: how busy the machine was besides the run."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


async def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench")
    ap.add_argument(
        "--pg",
        default=os.environ.get(
            "EDIGW_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="an admin DSN: the harness creates edigw_bench_* databases ('' = skip)",
    )
    ap.add_argument("--long", action="store_true", help="row 8 over 10 min, row 10 at 100,000")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--rate", type=float, default=250.0, help="fixed rate of rows 4-5 (req/s)")
    ap.add_argument(
        "--workers", type=int, default=1, help="serve processes of the SQLite gateway rows 1-5"
    )
    ap.add_argument("--out", default="", help="JSON path (default bench/results/<time>.json)")
    args = ap.parse_args(argv)
    if not wrk.available():
        print("bench: wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    admin = args.pg or None
    if admin:
        try:
            import asyncpg

            c = await asyncpg.connect(admin, timeout=5)
            await c.close()
        except Exception as exc:
            print(
                f"bench: PostgreSQL at {admin} unusable ({exc}); PG rows skipped", file=sys.stderr
            )
            admin = None
    only = {s for s in args.only.split(",") if s}
    started = machine()
    with tempfile.TemporaryDirectory(prefix="edigw-bench-") as tmp:
        ctx = scenarios.Ctx(
            Path(tmp),
            admin,
            duration_s=args.duration,
            long=args.long,
            rate=args.rate,
            workers=args.workers,
        )
        rows: list[dict[str, Any]] = []
        # records_row builds on scenarios' helpers, so it is added here, not in ALL
        rows_after = [
            records_row.records_ingest,
            fairness_row.fairness,
            records_million.records_million,
        ]
        for fn in [*scenarios.ALL, *rows_after]:
            base = fn.__name__ in ("b1", "b2", "b3")
            if only and fn.__name__ not in only and not base:
                continue
            print(f"bench: {fn.__name__} …", file=sys.stderr, flush=True)
            try:
                got = await scenarios.timed(fn, ctx)
            except Exception as exc:
                if base:
                    traceback.print_exc()
                    print(f"bench: baseline {fn.__name__} failed: {exc}", file=sys.stderr)
                    return 3
                traceback.print_exc()
                got = [
                    scenarios.row(
                        fn.__name__, "scenario failed", None, "", met=None, note=str(exc)[:200]
                    )
                ]
            for r in got:
                print("  " + json.dumps(r, default=str), file=sys.stderr, flush=True)
            rows += got
    out = {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {**started, "loadavg_at_end": loadavg()},
        "long": args.long,
        "duration_s": args.duration,
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = Path(args.out) if args.out else RESULTS / f"{out['at'].replace(':', '')}.json"
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    m = out["machine"]
    print(
        f"\nmachine: {m['cores']} cores, {m['cpu']}, Python {m['python']}, load average "
        f"{m['loadavg_at_start']} at the start and {m['loadavg_at_end']} at the end\n"
    )
    print(table(rows))
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
