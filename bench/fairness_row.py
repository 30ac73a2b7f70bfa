"""Row F1 (issue 22): fair delivery between filers on one rate-limited adapter (SQLite).

Filer A has a backlog of ``BACKLOG`` filings (preloaded with the tags an accept gives them,
``gateway.rules.fair``: A's first at the front, each next one a step further); filer B
posts a steady ``B_RATE``/s through wrk (its events carry filer code XYZ; A's rows are
renamed AAA) on the same no-op adapter limited to ``RATE``/s. Three runs, each on a fresh
store, all in this run on this machine:

* **B alone** (A idle): B's accept→deliver p99, the baseline;
* **A alone**: A's drain rate over the same window (shown: how near the limit a drain
  alone gets, as row 10);
* **A and B**: B's accept→deliver p99 (target: ≤ 2x the baseline) and A's drain rate
  over B's window (target, the issue's words: the adapter's limit minus B's share,
  within 10 %).

Accept→deliver is the store's ``received_at`` → ``delivered_at`` of B's filings. First
come first served would have sent B's first filing after A's whole backlog
(``BACKLOG / RATE`` seconds); the note says so.

Row F3: a fourth run, A's backlog limited to a delivery rate (``[quotas.filers.AAA]
delivery_rate = A_RATE``, depth one second's) while B posts as in F1: A's achieved
delivery rate over the window against its limit (target: within 10 %), and B's p99
against F1's idle baseline (target: ≤ 2x).

Run by ``bench/run.py`` after ``scenarios.ALL``; alone with
``make bench BENCH_ARGS="--only fairness"``.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from bench import procs, wrk
from bench.scenarios import Ctx, pct, per_ms, row, running

BACKLOG = 50_000
#: the adapter's rate_limit (``EDIGW_BENCH_FAIR_RATE``: lower it on a machine that cannot
#: send 500/s, where the limit would not bind and the row measures the machine)
RATE = float(os.environ.get("EDIGW_BENCH_FAIR_RATE", "500"))
#: the adapter's burst (``EDIGW_BENCH_FAIR_BURST``; 10 as in the other paced rows)
BURST = int(os.environ.get("EDIGW_BENCH_FAIR_BURST", "10"))
B_RATE = 20.0
#: filer A's delivery rate in row F3 (``EDIGW_BENCH_FAIR_A_RATE``): under the adapter's
#: limit minus B's share, and above B's rate (see README, Fair delivery: a limited filer's
#: backlog is stepped over by each claim while the others' tags run ahead of it)
A_RATE = float(os.environ.get("EDIGW_BENCH_FAIR_A_RATE", "50"))
#: vtime units of one weight-1 delivery (gateway.rules.fair.UNIT)
UNIT = 1_000_000


async def _store(ctx: Ctx, name: str, backlog: int) -> tuple[Path, str]:
    d = ctx.fresh_dir(name)
    url = procs.sqlite_url(d / "gw.db")
    await procs.migrate(url)
    if backlog:
        await procs.preload(url, backlog)
        conn = sqlite3.connect(d / "gw.db", isolation_level=None)
        try:  # A's rows as A's accepts would have written them (setup, not measured)
            conn.execute("BEGIN")
            conn.execute("UPDATE filings SET filer_code = 'AAA'")
            conn.execute(f"UPDATE deliveries SET vtime = (filing_seq - 1) * {UNIT}")
            conn.execute(
                "INSERT INTO fair_finish (adapter, filer_code, finish) VALUES (?1, 'AAA', ?2)",
                ("noop", backlog * UNIT),
            )
            conn.execute("COMMIT")
        finally:
            conn.close()
    return d, url


def _times(db: Path, filer: str) -> list[tuple[int, int]]:
    """(received_at, delivered_at) in µs of the filer's delivered filings."""
    conn = sqlite3.connect(db)
    try:
        return [
            (int(a), int(b))
            for a, b in conn.execute(
                "SELECT f.received_at, d.delivered_at FROM deliveries d JOIN filings f "
                "ON f.seq = d.filing_seq WHERE d.delivered_at IS NOT NULL AND f.filer_code = ?1",
                (filer,),
            )
        ]
    finally:
        conn.close()


async def _run(
    ctx: Ctx, name: str, *, backlog: int, b_posts: bool, window_s: float, a_rate: float = 0
) -> Any:
    """One gateway run: B posts for ``window_s`` (or the same wait without B). Returns B's
    latencies (ms), A's drain rate over the window (msg/s, from 1 s after ready to 1 s
    before the window ends, the same span in every run), the gateway's CPU seconds and
    the number delivered. ``a_rate``: A's delivery rate (0: none)."""
    d, url = await _store(ctx, name, backlog)
    spec = procs.GatewaySpec(store=url, rate_limit=RATE, burst=BURST)
    quota = f'{{"filers": {{"AAA": {{"delivery_rate": {a_rate}}}}}}}'
    if a_rate:  # the gateway's environment (procs.start_gateway passes os.environ on)
        os.environ["EDIGW_QUOTAS"] = quota
    try:
        p = procs.start_gateway(spec, d)
    finally:
        os.environ.pop("EDIGW_QUOTAS", None)
    with running(p):
        ready_us = int(time.time() * 1e6)
        if b_posts:
            res = wrk.run(p.url, duration_s=window_s, connections=2, rate=B_RATE, run_id=name)
            end_us = int(time.time() * 1e6)
            await _wait_filer(d, "XYZ", res.requests - res.non2xx, timeout_s=30.0)
        else:
            await asyncio.sleep(window_s)
            end_us = int(time.time() * 1e6)
        cpu = p.cpu_used()
    b = _times(d / "gw.db", "XYZ")
    lat = [(dl - rc) / 1000 for rc, dl in b]
    start, end = ready_us + 1_000_000, end_us - 1_000_000
    a = [dl for _, dl in _times(d / "gw.db", "AAA") if start <= dl <= end]
    drain = len(a) / ((end - start) / 1e6) if end > start else 0.0
    delivered = len(b) + len(_times(d / "gw.db", "AAA"))
    return lat, drain, cpu, delivered


def _count(d: Path, filer: str) -> int:
    return len(_times(d / "gw.db", filer))


async def _wait_filer(d: Path, filer: str, n: int, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while _count(d, filer) < n and time.monotonic() < deadline:  # noqa: ASYNC110 - a poll of the file
        await asyncio.sleep(0.2)


async def fairness(ctx: Ctx) -> list[dict[str, Any]]:
    window = 60.0 if ctx.long else max(20.0, 2 * ctx.duration_s)
    lat0, _, _, _ = await _run(ctx, "fair-b-alone", backlog=0, b_posts=True, window_s=window)
    _, drain0, _, _ = await _run(
        ctx, "fair-a-alone", backlog=BACKLOG, b_posts=False, window_s=window
    )
    lat, drain, cpu, delivered = await _run(
        ctx, "fair-a-and-b", backlog=BACKLOG, b_posts=True, window_s=window
    )
    lat3, drain3, cpu3, delivered3 = await _run(
        ctx, "fair-a-limited", backlog=BACKLOG, b_posts=True, window_s=window, a_rate=A_RATE
    )
    p99_0, p99 = pct(lat0, 99), pct(lat, 99)
    ratio3 = pct(lat3, 99) / p99_0 if p99_0 else None
    b_share = len(lat) / window if lat else 0.0
    want = RATE - b_share
    ratio = p99 / p99_0 if p99_0 else None
    drain_ok = abs(drain / want - 1) <= 0.10 if want > 0 else False
    fifo_s = BACKLOG / RATE
    return [
        row(
            "F1",
            f"filer B at {B_RATE:.0f}/s beside A's backlog of {BACKLOG:,}: B's accept→deliver "
            f"p99 (adapter at {RATE:.0f}/s, SQLite)",
            p99,
            "ms",
            baseline=p99_0,
            baseline_what="same, A idle",
            ratio=ratio,
            target="≤ 2x",
            met=ratio is not None and ratio <= 2.0,
            cpu_ms=per_ms(cpu, delivered),
            note=f"B: {len(lat)} delivered, p50 {pct(lat, 50):.1f} ms (idle {pct(lat0, 50):.1f} "
            f"ms, {len(lat0)} delivered); first come first served would have held B "
            f"~{fifo_s:.0f} s behind A's backlog; window {window:.0f} s",
        ),
        row(
            "F2",
            "filer A's drain rate while B posts (same run)",
            drain,
            "msg/s",
            baseline=want,
            baseline_what=f"the adapter's limit {RATE:.0f}/s minus B's {b_share:.1f}/s",
            ratio=drain / want if want > 0 else None,
            target="1.00 ± 0.10",
            met=drain_ok,
            note=f"adapter rate_limit {RATE:.0f}/s, burst {BURST}; A alone "
            f"drained {drain0:.0f}/s here (row 10 measures how near the limit a drain gets)",
        ),
        row(
            "F3",
            f"filer A limited to {A_RATE:.0f}/s (delivery_rate) while B posts: A's achieved "
            "delivery rate",
            drain3,
            "msg/s",
            baseline=A_RATE,
            baseline_what="A's delivery_rate",
            ratio=drain3 / A_RATE,
            target="1.00 ± 0.10",
            met=abs(drain3 / A_RATE - 1) <= 0.10,
            cpu_ms=per_ms(cpu3, delivered3),
            note=f"B's p99 {pct(lat3, 99):.1f} ms vs {p99_0:.1f} ms idle (F1's baseline): "
            f"{ratio3 or 0:.2f}x (≤ 2x: {'yes' if ratio3 is not None and ratio3 <= 2 else 'NO'}"
            f"), p50 {pct(lat3, 50):.1f} ms, {len(lat3)} delivered; A alone drained "
            f"{drain0:.0f}/s (F2); adapter {RATE:.0f}/s, burst {BURST}",
        ),
    ]
