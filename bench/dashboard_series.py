"""What the dashboard's charts cost with 1,000,000 filings (issue 21), on SQLite.

    .venv/bin/python bench/dashboard_series.py [--rows 1000000]

Builds a store with the real migrations, 1,000,000 filings accepted over 7 days (one
delivery each, delivered 1-60 s later), then times the charts' two reads
(``series_accepted``, ``series_delivered``: ranges of ``filings_received``) over the last
3 hours, against the baseline they avoid: the same figures read by ``delivered_at``,
which has no index (a scan of every delivery). Prints each plan and the median of 5 runs.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from gateway.store import sansio, schema

MIN_US = 60_000_000
DAY_US = 24 * 60 * MIN_US

BASELINE = """
SELECT d.delivered_at, f.received_at
FROM deliveries d JOIN filings f ON f.seq = d.filing_seq
WHERE d.delivered_at >= ?1
"""


def build(path: Path, rows: int, now_us: int) -> None:
    conn = sqlite3.connect(path)
    for _, script in schema.MIGRATIONS["sqlite"]:
        for statement in schema.split_sqlite(script):
            conn.execute(statement)
    start = now_us - 7 * DAY_US
    step = 7 * DAY_US // rows
    conn.execute(
        """
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
        INSERT INTO filings (id, filing_type, environment, reference, filer_code, body_hash,
            ordering_key, content_type, payload, payload_is_json, metadata, source,
            received_at, status, updated_at)
        SELECT 'fil_' || i, 'isf', 'cert', 'REF' || i, 'ABC', 'h', 'REF' || i,
            'application/json', '{}', 1, '{}', 'api', ?2 + i * ?3, 'delivered', ?2 + i * ?3
        FROM n
        """,
        (rows, start, step),
    )
    conn.execute(
        """
        INSERT INTO deliveries (id, filing_seq, filing_id, adapter, ordering_key, state,
            available_at, created_at, updated_at, delivered_at)
        SELECT 'dlv_' || seq, seq, id, 'ace', ordering_key, 'delivered', received_at,
            received_at, received_at, received_at + (1 + seq % 60) * 1000000
        FROM filings
        """
    )
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


def timed(conn: sqlite3.Connection, text: str, *args: int) -> tuple[float, int, str]:
    plan = " / ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + text, args))
    runs = []
    n = 0
    for _ in range(5):
        t0 = time.perf_counter()
        n = len(conn.execute(text, args).fetchall())
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs) * 1000, n, plan


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    now_us = int(time.time() * 1e6)
    since = now_us - 3 * 60 * MIN_US
    lookback = since - 12 * 60 * MIN_US
    q = sansio.ready("sqlite")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "series.db"
        t0 = time.perf_counter()
        build(path, args.rows, now_us)
        print(f"built {args.rows:,} filings + deliveries in {time.perf_counter() - t0:.1f}s")
        conn = sqlite3.connect(path)
        for name, text, params in (
            ("series_accepted", q["series_accepted"], (since,)),
            ("series_delivered", q["series_delivered"], (lookback, since)),
            ("baseline: by delivered_at (no index)", BASELINE, (since,)),
        ):
            ms, n, plan = timed(conn, text, *params)
            print(f"{name:40s} {ms:8.1f} ms  {n:7,} rows  plan: {plan}")
        conn.close()


if __name__ == "__main__":
    main()
