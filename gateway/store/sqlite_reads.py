"""SQLite reads (run on the reader thread of ``sqlite.py``): filings with their deliveries,
the filing list, delivery counts and queue statistics (issue 7).
"""

from __future__ import annotations

import sqlite3

from gateway import models
from gateway.store import base, rows, sqlite_schema


def load_filings(conn: sqlite3.Connection, seqs: set[int]) -> dict[int, models.Filing]:
    ordered = sorted(seqs)
    marks = ",".join("?" * len(ordered))
    return {
        r[0]: rows.filing(r)
        for r in conn.execute(
            f"SELECT {sqlite_schema.F_COLS} FROM filings f WHERE f.seq IN ({marks})", ordered
        )
    }


def _deliveries_of(
    conn: sqlite3.Connection, filing_seqs: list[int]
) -> dict[int, list[models.Delivery]]:
    out: dict[int, list[models.Delivery]] = {s: [] for s in filing_seqs}
    if not filing_seqs:
        return out
    marks = ",".join("?" * len(filing_seqs))
    for r in conn.execute(
        f"SELECT {sqlite_schema.D_COLS} FROM deliveries d WHERE d.filing_seq IN ({marks}) "
        "ORDER BY d.seq",
        filing_seqs,
    ):
        out[r[12]].append(rows.delivery(r))
    return out


def get_filing(conn: sqlite3.Connection, filing_id: str) -> models.FilingView | None:
    row = conn.execute(
        f"SELECT {sqlite_schema.F_COLS} FROM filings f WHERE f.id = ?", (filing_id,)
    ).fetchone()
    if row is None:
        return None
    return rows.filing_view(row, _deliveries_of(conn, [row[0]])[row[0]])


def list_filings(
    conn: sqlite3.Connection, flt: base.ListFilter, limit: int, cursor: str | None
) -> models.Page:
    where, params = [], []
    if cursor is not None:
        where.append("f.seq < ?")
        params.append(rows.decode_cursor(cursor))
    for column, value in (
        ("f.status", flt.status),
        ("f.filing_type", flt.filing_type),
        ("f.environment", flt.environment),
        ("f.reference", flt.reference),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(str(value))
    if flt.since is not None:
        where.append("f.received_at >= ?")
        params.append(rows.us(flt.since))
    if flt.until is not None:
        where.append("f.received_at < ?")
        params.append(rows.us(flt.until))
    if flt.at_risk is not None:
        risky = f"(f.at_risk_at IS NOT NULL AND f.status NOT IN {sqlite_schema.SETTLED_SQL})"
        where.append(risky if flt.at_risk else f"NOT {risky}")
    if flt.ack_conflict is not None:
        flagged = (
            "EXISTS (SELECT 1 FROM deliveries c WHERE c.filing_seq = f.seq AND c.ack_conflict = 1)"
        )
        where.append(flagged if flt.ack_conflict else f"NOT {flagged}")
    if flt.state is not None or flt.adapter is not None or flt.ack_overdue is not None:
        sub = ["d.filing_seq = f.seq"]
        if flt.ack_overdue is not None:
            sub.append("d.ack_overdue = ?")
            params.append(int(flt.ack_overdue))
        if flt.state is not None:
            sub.append("d.state = ?")
            params.append(flt.state.value)
        if flt.adapter is not None:
            sub.append("d.adapter = ?")
            params.append(flt.adapter)
        where.append(f"EXISTS (SELECT 1 FROM deliveries d WHERE {' AND '.join(sub)})")
    sql = f"SELECT {sqlite_schema.F_COLS} FROM filings f"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY f.seq DESC LIMIT ?"
    found = conn.execute(sql, [*params, limit + 1]).fetchall()
    more = len(found) > limit
    found = found[:limit]
    deliveries = _deliveries_of(conn, [r[0] for r in found])
    items = [rows.filing_view(r, deliveries[r[0]]) for r in found]
    next_cursor = rows.encode_cursor(found[-1][0]) if more and found else None
    return models.Page(items=items, next_cursor=next_cursor)


_UNSETTLED_STATUSES = "('pending','in_progress','retrying','deferred','blocked')"


def queue_stats(conn: sqlite3.Connection) -> base.QueueStats:
    """Counts by (adapter, state) walk the covering index ``deliveries_state``; the oldest
    waiting delivery reads only claimable rows (partial index); at-risk reads only
    unsettled filings (``filings_status``). The caller caches the result."""
    counts: dict[str, dict[str, int]] = {}
    for state, adapter, n in conn.execute(
        "SELECT state, adapter, COUNT(*) FROM deliveries GROUP BY state, adapter"
    ):
        counts.setdefault(adapter, {})[state] = n
    oldest = {
        adapter: rows.dt(first)
        for adapter, first in conn.execute(
            "SELECT adapter, MIN(created_at) FROM deliveries "
            f"WHERE state IN {sqlite_schema.CLAIMABLE_SQL} GROUP BY adapter"
        )
    }
    (at_risk,) = conn.execute(
        f"SELECT COUNT(*) FROM filings WHERE status IN {_UNSETTLED_STATUSES} "
        "AND at_risk_at IS NOT NULL"
    ).fetchone()
    (conflicts,) = conn.execute(
        "SELECT COUNT(*) FROM deliveries WHERE ack_conflict = 1"  # partial index, v7
    ).fetchone()
    return base.QueueStats(
        counts=counts, oldest_waiting=oldest, at_risk=int(at_risk), ack_conflicts=int(conflicts)
    )


def counts(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for adapter, state, n in conn.execute(
        "SELECT adapter, state, COUNT(*) FROM deliveries GROUP BY adapter, state"
    ):
        out.setdefault(adapter, {})[state] = n
    return out
