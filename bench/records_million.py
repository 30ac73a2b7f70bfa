"""Row R2 (issue 20): the records archive at 1,000,000 filings.

1. **Build** an archive of ``FILINGS`` filings: real segment files (``segment.build_segment``
   and ``put``, ``PER_SEGMENT`` records each, zlib level 1 frames to build it faster) and
   the real search index (``Index.add``, identifiers extracted from each payload), from
   synthetic store-shaped records
   (``gateway.records.bench_index.filing``: six filing types over five years, 60 filers).
   They are entered in the store's ``record_segments`` (not in the audit chain) so the
   gateway's mover sees them as its own. This is setup, built without HTTP and without the
   live store: the mover's own rate is measured by row R1 and phase 3 here.
2. **Search by reference** over the archive: ``QUERIES`` references picked at random among
   the million (and misses), timed through ``Records.search`` (what ``GET /v1/records``
   runs: live store first, then the index); p50/p99. Target p99 ≤ 100 ms.
3. **Steady load**: ``STEADY_S`` seconds at a fixed ``ctx.rate`` with the mover on at its
   defaults (``[[records.retention]] live = "5s"``, ``max_share`` 0.1, ``behind_share``
   0.5), from an empty live store: its filing count and used bytes (SQLite: (page_count -
   freelist_count) x page_size) are sampled every ``SAMPLE_S``. After ``WARM_S`` of warm-up
   (the live period fills, the mover finds its share) the steady window starts: **flat**
   when the used bytes at its end are ≤ ``FLAT`` x those at its start, and the filings of
   its last half within 25% of its first half's, while the archive grows. Archiving moves
   the filings' audit rows out too, so the bytes follow the filings. Search is timed again
   after it (the live store then holds what the load left).
4. **Ingest with archiving**: a ``serve`` on SQLite posting ISF events with wrk (max rate),
   mover off / on / on / off (default ``max_share`` 0.1: the mover archives what was just
   delivered, into the million-filing archive); ratio on/off, target ≥ 0.9.

Also measured: the CPU cost of encryption at rest per filing (seal + open of a payload
and a receipt with AES-256-GCM), against the JSON encode + decode the codec does anyway.

Alone: ``python -m bench.run --only records_million`` (about 6 minutes here).
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import procs, wrk
from bench.scenarios import Ctx, row, running

FILINGS = 1_000_000
PER_SEGMENT = 10_000
QUERIES = 1000
STEADY_S = 90.0
SAMPLE_S = 5.0
#: the warm-up before the steady window: the live period fills, the mover finds its share
WARM_S = 30.0
#: flat: used bytes at the window's end at most this many times those at its start
FLAT = 1.1
LIVE = "5s"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "isf.json"


def _build(root: Path, db: Path) -> tuple[float, int]:
    """The archive under ``root`` (segments/ + index.sqlite), entered in ``db``; (seconds,
    bytes of segments)."""
    from gateway.records import bench_index, index, segment, storage

    store = storage.DirectoryStorage(root / "segments")
    idx = index.Index(root / "index.sqlite")
    rnd = random.Random(20)
    entered = []
    t0 = time.perf_counter()
    try:
        for seq, start in enumerate(range(0, FILINGS, PER_SEGMENT)):
            records = [bench_index.filing(n, rnd) for n in range(start, start + PER_SEGMENT)]
            at = bench_index.START + timedelta(seconds=seq)
            written, data = segment.build_segment(records, created_at=at, level=1)
            store.put(written.name, data)
            idx.add(written, records)
            first, last = records[0]["filing"]["id"], records[-1]["filing"]["id"]
            entered.append((written.name, written.sha256, len(records), first, last, 0))
            if seq % 10 == 9:
                done = start + PER_SEGMENT
                rate = done / (time.perf_counter() - t0)
                print(f"  archived {done:>9,} filings  {rate:8,.0f}/s", file=sys.stderr, flush=True)
    finally:
        idx.close()
    took = time.perf_counter() - t0
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.executemany(
            "INSERT INTO record_segments (name, sha256, records, first_id, last_id, archived_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            entered,
        )
    finally:
        conn.close()
    size = sum(p.stat().st_size for p in (root / "segments").iterdir())
    return took, size


async def _search(url: str, root: Path) -> dict[str, Any]:
    """Search-by-reference latencies through ``Records.search`` (live, then archive)."""
    from gateway import config
    from gateway.clock import SystemClock
    from gateway.records import bench_index
    from gateway.service.records import Records, Search
    from gateway.store import sqlite as store_sqlite

    cfg = config.parse_config(
        {"gateway": {"store": url}, "records": {"enabled": True, "dir": str(root)}}, {}
    )
    store = store_sqlite.SqliteStore(Path(url.removeprefix("sqlite:///")))
    await store.open()
    records = Records(store=store, cfg=cfg, clock=SystemClock(), environ={})
    records.open()
    rnd = random.Random(7)
    picks = [rnd.randrange(FILINGS) for _ in range(QUERIES)]
    refs = [bench_index.filing(n, random.Random(0))["filing"]["reference"] for n in picks]
    times: dict[str, list[float]] = {"hit": [], "miss": []}
    found = 0
    try:
        for kind, queries in (("hit", refs), ("miss", [f"NOPE-{i}" for i in range(QUERIES // 5)])):
            for ref in queries:
                t0 = time.perf_counter()
                items, cursor = await records.search(Search(terms={"reference": ref}))
                while cursor is not None:  # the answer is the whole search, every page
                    more, cursor = await records.search(
                        Search(terms={"reference": ref}, cursor=cursor)
                    )
                    items += more
                times[kind].append((time.perf_counter() - t0) * 1000)
                found += kind == "hit" and bool(items)
    finally:
        records.close()
        await store.close()
    return {
        kind: {"p50": statistics.median(t), "p99": _p99(t), "max": max(t)}
        for kind, t in times.items()
    } | {"found": found}


def _p99(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _live_size(db: Path) -> tuple[int, int]:
    """(live filings, used bytes: pages in use times page size) of the store."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        count = conn.execute("SELECT count(*) FROM filings").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int(count), int((pages - free) * size)
    finally:
        conn.close()


def _archived(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(
            conn.execute("SELECT coalesce(sum(records), 0) FROM record_segments").fetchone()[0]
        )
    finally:
        conn.close()


def _serve(d: Path, url: str, root: Path, *, mover: bool, name: str) -> procs.Proc:
    """``serve`` on ``url`` with the archive at ``root``: the mover on (retention ``LIVE``,
    its share of the time at the defaults) or off."""
    port = procs.free_port()
    cfg = procs.write_config(procs.GatewaySpec(store=url), d, port, name)
    cfg.write_text(
        cfg.read_text()
        + f'\n[records]\nenabled = {"true" if mover else "false"}\ndir = "{root}"\n'
        + 'interval = "1s"\nbatch_filings = 1000\n'
        + "\n[[records.retention]]\n"
        + f'live = "{LIVE}"\ntotal = "3650d"\n'
    )
    log = d / f"{name}.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(procs.ROOT),
        "EDIGW_AUDIT__HMAC_KEY": "bench-only-key-0123456789abcdef0123456789abcdef",
    }
    p = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli.main", "serve", "--config", str(cfg)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=str(d),
    )
    proc = procs.Proc(p, log, port)
    try:
        procs.wait_http(f"{proc.url}/readyz", 120, p)
        procs.wait_listening(log, 1, 120)
        proc.mark_ready()
    except RuntimeError as exc:
        proc.stop()
        raise RuntimeError(f"{exc}; log tail: {log.read_text()[-800:]}") from exc
    return proc


def _steady(
    d: Path, url: str, root: Path, rate: float
) -> tuple[list[tuple[float, int, int, int]], Any]:
    """(seconds, live filings, live used bytes, archived) every SAMPLE_S under a fixed rate,
    and wrk's result (the rate accepted)."""
    import threading

    db = Path(url.removeprefix("sqlite:///"))
    samples: list[tuple[float, int, int, int]] = []
    p = _serve(d, url, root, mover=True, name="steady")
    with running(p):
        done = threading.Event()

        def sample() -> None:
            t0 = time.monotonic()
            while not done.wait(SAMPLE_S):
                samples.append((round(time.monotonic() - t0), *_live_size(db), _archived(db)))

        t = threading.Thread(target=sample)
        t.start()
        try:
            res = wrk.run(p.url, duration_s=STEADY_S, connections=16, rate=rate)
        finally:
            done.set()
            t.join()
    return samples, res


def _seal_cost(n: int = 20_000) -> tuple[float, float]:
    """µs per filing: (seal + open of payload and receipt, JSON encode + decode of both)."""
    from gateway.records import crypto

    ring = crypto.Keyring({"k1": os.urandom(32)})
    payload = json.loads(EXAMPLE.read_text())["payload"]
    receipt = {"status": "202", "transport_id": "dlv_01M8XX2HBQ0WJXYH779G49RQ04", "bytes": 1843}
    t0 = time.perf_counter()
    for _ in range(n):
        p, r = json.dumps(payload), json.dumps(receipt)
        json.loads(p), json.loads(r)
    plain = (time.perf_counter() - t0) / n * 1e6
    p, r = json.dumps(payload), json.dumps(receipt)
    t0 = time.perf_counter()
    for i in range(n):
        sp = ring.seal_text(p, aad=f"payload:fil_{i}")
        sr = ring.seal_text(r, aad=f"receipt:fil_{i}:dlv_{i}")
        (
            ring.open_text(sp, aad=f"payload:fil_{i}"),
            ring.open_text(sr, aad=f"receipt:fil_{i}:dlv_{i}"),
        )
    sealed = (time.perf_counter() - t0) / n * 1e6
    return sealed, plain


async def records_million(ctx: Ctx) -> list[dict[str, Any]]:
    from gateway.store import sqlite as store_sqlite

    d = ctx.fresh_dir("records-million")
    db, root = d / "gw.db", d / "records"
    store = store_sqlite.SqliteStore(db)
    await store.open()
    try:
        await store.migrate()
    finally:
        await store.close()
    url = procs.sqlite_url(db)
    build_s, seg_bytes = _build(root, db)
    index_bytes = sum(p.stat().st_size for p in root.glob("index.sqlite*"))
    print(f"  built in {build_s:.0f} s; searching", file=sys.stderr, flush=True)
    found = await _search(url, root)
    samples, offered = _steady(d, url, root, ctx.rate)  # first: from an empty live store
    if len(samples) < 3:
        raise RuntimeError(f"{len(samples)} samples of the live store: STEADY_S too short")
    window = [s for s in samples if s[0] >= WARM_S]
    if len(window) < 4:
        raise RuntimeError(f"{len(window)} samples after the warm-up: STEADY_S too short")
    half = len(window) // 2
    middle = statistics.mean(s[1] for s in window[:half])
    last = statistics.mean(s[1] for s in window[half:])
    # used bytes sawtooth with each mover pass (±10% between 5 s samples), so the two
    # halves' means are compared, not a first and a last sample that may fall on teeth
    start_b = statistics.mean(s[2] for s in window[:half])
    end_b = statistics.mean(s[2] for s in window[half:])
    flat_b = end_b <= FLAT * start_b
    flat = flat_b and middle > 0 and abs(last - middle) / middle <= 0.25
    span = window[-1][0] - window[0][0]
    moved_rate = (window[-1][3] - window[0][3]) / span if span else 0.0
    after = await _search(url, root)
    runs = []
    for mover in (False, True, True, False):
        p = _serve(d, url, root, mover=mover, name=f"ingest-{'on' if mover else 'off'}")
        with running(p):
            runs.append((mover, wrk.run(p.url, duration_s=ctx.duration_s, connections=64)))
    on = [r.ok_rps for m, r in runs if m]
    off = [r.ok_rps for m, r in runs if not m]
    ratio = statistics.mean(on) / statistics.mean(off) if statistics.mean(off) else 0.0
    sealed_us, plain_us = _seal_cost()
    hit = found["hit"]
    return [
        row(
            "R2",
            f"records search by reference over {FILINGS:,} archived filings, p99 (issue 20)",
            hit["p99"],
            "ms",
            target="≤ 100",
            met=hit["p99"] <= 100 and after["hit"]["p99"] <= 100,
            note=f"Records.search (live then archive) on SQLite, {QUERIES} random references: "
            f"p50 {hit['p50']:.1f} ms, max {hit['max']:.0f}; misses p99 "
            f"{found['miss']['p99']:.1f} ms; {found['found']}/{QUERIES} found; again after the "
            f"steady load (live store holding ~{last:.0f} filings): p99 "
            f"{after['hit']['p99']:.1f} ms. Archive built in {build_s:.0f} s "
            f"({FILINGS / build_s:,.0f} filings/s, build_segment + put + Index.add, no HTTP): "
            f"segments {seg_bytes / 1e6:.0f} MB, index {index_bytes / 1e6:.0f} MB",
        ),
        row(
            "R2b",
            "durable ingest with the mover archiving into the million-filing archive",
            statistics.mean(on),
            "202/s",
            baseline=statistics.mean(off),
            baseline_what="same store and archive, mover off",
            ratio=ratio,
            target="≥ 0.9",
            met=ratio >= 0.9,
            note=f"off, on, on, off: rates {[round(r.ok_rps) for _, r in runs]}; retention "
            f"live {LIVE}",
        ),
        row(
            "R2c",
            f"live store used bytes under steady load, {ctx.rate:.0f}/s for {STEADY_S:.0f} s, "
            f"retention live {LIVE}, mover at its default share",
            end_b / 1e6,
            "MB",
            baseline=start_b / 1e6,
            baseline_what=f"mean used bytes of the first half of the steady window (from "
            f"{WARM_S:.0f} s in); the figure: the second half's",
            ratio=end_b / start_b if start_b else None,
            target=f"flat (second half ≤ {FLAT} x first half, in mean used bytes and within "
            "25% in live filings)",
            met=flat,
            note=f"accepted {offered.ok_rps:.0f}/s of {ctx.rate:.0f}/s offered; archived "
            f"{moved_rate:.0f}/s over the window; live filings: first half of the window "
            f"{middle:.0f}, second {last:.0f}; samples (s, live filings, used MB, archived): "
            + ", ".join(f"({s}, {n}, {b / 1e6:.1f}, {a:,})" for s, n, b, a in samples),
        ),
        row(
            "R2d",
            "encryption at rest: CPU per filing (seal + open of payload and receipt)",
            sealed_us,
            "µs",
            baseline=plain_us,
            baseline_what="JSON encode + decode of the same payload and receipt",
            ratio=sealed_us / plain_us if plain_us else None,
            note=f"AES-256-GCM via cryptography, {EXAMPLE.name} payload "
            f"({len(json.dumps(json.loads(EXAMPLE.read_text())['payload']))} bytes)",
        ),
    ]
