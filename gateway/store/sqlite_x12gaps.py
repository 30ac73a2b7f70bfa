"""X12 control-number gaps on SQLite: the two queries of ``x12gaps``, on the reader."""

from __future__ import annotations

import sqlite3

from gateway.store import x12gaps


def x12_gaps(conn: sqlite3.Connection, q: x12gaps.GapQuery) -> x12gaps.X12GapReport:
    groups_sql, gaps_sql, groups_params, gaps_params = x12gaps.queries(x12gaps.SQLITE, q)
    groups = conn.execute(groups_sql, groups_params).fetchall()
    gaps = conn.execute(gaps_sql, gaps_params).fetchall()
    return x12gaps.report(groups, gaps, q.limit)
