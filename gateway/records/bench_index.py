"""Benchmark: build a search index over N archived filings, then time searches.

    python -m gateway.records.bench_index [--filings 1000000] [--dir /tmp/edigw-bench-index]

The filings are synthetic but shaped like the examples (entry summaries, ISFs, ocean and
rail manifests, protests, with entry numbers, bills and ISF numbers in their payloads as JSON
text), spread over five years, 60 filer codes. The index is built through ``Index.add`` a
segment (of ``--per-segment`` records) at a time, as the archiver will; the segment files
themselves are not written (this measures the index, not the disk). Prints the build rate,
the index file's size and p50/p99/max of each kind of search, newest-first page of 50.
The issue's target: search by reference p99 ≤ 100 ms over 1,000,000 archived filings.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.records import index, segment

START = datetime(2021, 1, 1, tzinfo=UTC)
SPAN_S = 5 * 365 * 86400
FILERS = [f"F{i:02d}" for i in range(60)]
KINDS = ["entry_summary", "isf", "manifest.ocean", "manifest.rail", "protest", "entry"]


def entry_number(n: int) -> str:
    return f"{FILERS[n % 60]}-{n % 10_000_000:07d}-{n % 7}"


def bill(n: int) -> str:
    return f"MAEU{n:09d}"


def filing(n: int, rnd: random.Random) -> dict[str, Any]:
    kind = KINDS[n % len(KINDS)]
    received = START + timedelta(seconds=SPAN_S * n // 1_000_000 + rnd.randrange(60))
    payload: dict[str, Any] | str
    if kind == "entry_summary":
        reference = entry_number(n)
        payload = {"entry_number": reference, "entry_type": "01", "lines": [{"line": 1}]}
    elif kind == "isf":
        reference = f"ISF-{n:010d}"
        payload = {"isf_type": "10+2", "bill_of_lading": bill(n), "hts": ["8471.30.0100"]}
    elif kind == "manifest.ocean":
        reference = bill(n)
        payload = {"bill_of_lading": bill(n), "vessel": "MAERSK KENTUCKY"}
    elif kind == "manifest.rail":
        reference = f"CN-TRAIN-{n:08d}"
        payload = {"cars": [{"car": "TTGX 1", "bills": [f"CNBOL{n:08d}", f"CNBOL{n + 1:08d}"]}]}
    elif kind == "protest":
        reference = f"2704-26-{n:07d}"
        payload = {"protest_number": reference, "entries": [entry_number(n - 1)]}
    else:
        reference = entry_number(n)
        payload = f"A  {reference}  2704 01 MAEU123456789\n"
    return {
        "filing": {
            "id": f"fil_{n:012d}",
            "filing_type": kind,
            "environment": "production" if n % 10 else "cert",
            "reference": reference,
            "filer_code": FILERS[n % 60],
            "payload": payload if isinstance(payload, str) else json.dumps(payload),
            "payload_is_json": 0 if isinstance(payload, str) else 1,
            "received_at": index.micros(received),
            "updated_at": index.micros(received + timedelta(hours=2)),
            "status": "acknowledged" if n % 50 else "rejected",
        },
        "acks": [{"codes": json.dumps(["A"] if n % 50 else ["E90"])}],
    }


def fake_written(seq: int, records: list[dict[str, Any]], created_at: datetime) -> segment.Written:
    """What write_segment would return for ``records`` (entries in order), without the file."""
    entries = tuple(
        segment.Entry(id=r["filing"]["id"], position=i, offset=0, length=0, digest="")
        for i, r in enumerate(records)
    )
    header = segment.Header(
        format=segment.FORMAT,
        created_at=created_at,
        record_count=len(records),
        compression="zlib",
        key_id=None,
        entries=entries,
    )
    name = f"{created_at:%Y%m%dT%H%M%S}Z-{seq:032x}.seg"
    return segment.Written(name=name, sha256=f"{seq:064x}", size=0, header=header)


def timed(idx: index.Index, queries: list[index.Query]) -> tuple[list[float], int]:
    times, found = [], 0
    for q in queries:
        t0 = time.perf_counter()
        page = idx.search(q)
        times.append((time.perf_counter() - t0) * 1000)
        found += bool(page.hits)
    return times, found


def report(label: str, times: list[float], found: int) -> None:
    times = sorted(times)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(
        f"  {label:<38} n={len(times):<5} hit={found:<5} p50={statistics.median(times):7.2f} ms"
        f"  p99={p99:7.2f} ms  max={times[-1]:7.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filings", type=int, default=1_000_000)
    parser.add_argument("--per-segment", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--dir", default="/tmp/edigw-bench-index")
    parser.add_argument("--keep", action="store_true", help="reuse an index built before")
    args = parser.parse_args()
    root = Path(args.dir)
    path = root / "index.sqlite"
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(20)
    idx = index.Index(path)
    have = len(idx.segments()) * args.per_segment
    t0 = time.perf_counter()
    for seq, start in enumerate(range(0, args.filings, args.per_segment)):
        if start < have:
            continue
        records = [
            filing(n, rnd) for n in range(start, min(start + args.per_segment, args.filings))
        ]
        idx.add(fake_written(seq, records, START + timedelta(seconds=seq)), records)
        if seq % 100 == 99:
            done = start + args.per_segment
            print(f"  built {done:>9,} filings  {done / (time.perf_counter() - t0):8,.0f}/s")
    build_s = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in root.glob("index.sqlite*"))
    print(
        f"index of {args.filings:,} filings: built in {build_s:.1f} s, "
        f"{size / 1e6:.0f} MB ({size / args.filings:.0f} bytes/filing)"
    )

    n = args.filings
    picks = [rnd.randrange(n) for _ in range(args.queries)]
    refs = [filing(i, random.Random(0))["filing"]["reference"] for i in picks]
    kinds: list[tuple[str, list[index.Query]]] = [
        ("reference (hit)", [index.Query(terms={"reference": r}) for r in refs]),
        (
            "reference (miss)",
            [index.Query(terms={"reference": f"NOPE-{i}"}) for i in range(args.queries)],
        ),
        (
            "bill_of_lading in payload",
            [
                index.Query(terms={"bill_of_lading": bill(i - i % 6 + 1)})
                for i in picks
                if i - i % 6 + 1 < n
            ],
        ),
        (
            "entry_number (entries, protests)",
            [index.Query(terms={"entry_number": entry_number(i - i % 6)}) for i in picks],
        ),
        ("identifier, any field", [index.Query(identifier=r) for r in refs]),
        (
            "filer_code + 30-day range, page 1",
            [
                index.Query(
                    filer_code=FILERS[i % 60],
                    received_from=START + timedelta(days=i % 1800),
                    received_to=START + timedelta(days=i % 1800 + 30),
                )
                for i in picks[: args.queries // 4]
            ],
        ),
        (
            "filer_code + type + state (most empty)",
            [
                index.Query(filer_code=FILERS[i % 60], filing_type="isf", state="acknowledged")
                for i in picks[: args.queries // 4]
            ],
        ),
        (
            "state=rejected, a page deep",
            [
                index.Query(state="rejected", received_to=START + timedelta(days=i % 1800))
                for i in picks[: args.queries // 4]
            ],
        ),
    ]
    print("searches (newest first, a page of 50, warm page cache):")
    for label, queries in kinds:
        report(label, *timed(idx, queries))
    first = idx.search(index.Query(filer_code="F07", limit=50))
    cursor, pages, t0 = first.next_cursor, 1, time.perf_counter()
    while cursor is not None and pages < 200:
        cursor = idx.search(index.Query(filer_code="F07", limit=50, cursor=cursor)).next_cursor
        pages += 1
    print(f"  keyset paging filer F07: {pages} pages in {(time.perf_counter() - t0) * 1000:.0f} ms")
    idx.close()


if __name__ == "__main__":
    main()
