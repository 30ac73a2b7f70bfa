"""Reads of the PostgreSQL store: one filing, the filtered listing. No transaction needed."""

from __future__ import annotations

from typing import Any

import asyncpg

from gateway import models
from gateway.store import base, pg_sql, rows

Conn = asyncpg.Connection


async def deliveries_of(conn: Conn, filing_seqs: list[int]) -> dict[int, list[models.Delivery]]:
    out: dict[int, list[models.Delivery]] = {s: [] for s in filing_seqs}
    if filing_seqs:
        for r in await conn.fetch(
            f"SELECT {pg_sql.D_COLS} FROM deliveries d WHERE d.filing_seq = ANY($1::bigint[]) "
            "ORDER BY d.seq",
            filing_seqs,
        ):
            out[r[12]].append(rows.delivery(r))
    return out


async def get_filing(conn: Conn, filing_id: str) -> models.FilingView | None:
    return (await get_filings(conn, [filing_id]))[0]


async def get_filings(conn: Conn, filing_ids: list[str]) -> list[models.FilingView | None]:
    """Several filings (a coalesced batch of ``get_filing`` calls) in two statements."""
    found = {
        r[1]: r
        for r in await conn.fetch(
            f"SELECT {pg_sql.F_COLS} FROM filings f WHERE f.id = ANY($1::text[])",
            sorted(set(filing_ids)),
        )
    }
    deliveries = await deliveries_of(conn, sorted(r[0] for r in found.values()))
    return [
        None if (r := found.get(i)) is None else rows.filing_view(r, deliveries[r[0]])
        for i in filing_ids
    ]


async def list_filings(
    conn: Conn, flt: base.ListFilter, limit: int, cursor: str | None
) -> models.Page:
    where: list[str] = []
    params: list[Any] = []

    def arg(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    if cursor is not None:
        where.append(f"f.seq < {arg(rows.decode_cursor(cursor))}")
    for column, value in (
        ("f.status", flt.status),
        ("f.filing_type", flt.filing_type),
        ("f.environment", flt.environment),
        ("f.reference", flt.reference),
    ):
        if value is not None:
            where.append(f"{column} = {arg(str(value))}")
    if flt.since is not None:
        where.append(f"f.received_at >= {arg(rows.us(flt.since))}")
    if flt.until is not None:
        where.append(f"f.received_at < {arg(rows.us(flt.until))}")
    if flt.at_risk is not None:
        risky = f"(f.at_risk_at IS NOT NULL AND f.status NOT IN {pg_sql.SETTLED})"
        where.append(risky if flt.at_risk else f"NOT {risky}")
    if flt.ack_conflict is not None:
        flagged = (
            "EXISTS (SELECT 1 FROM deliveries c WHERE c.filing_seq = f.seq AND c.ack_conflict)"
        )
        where.append(flagged if flt.ack_conflict else f"NOT {flagged}")
    if flt.state is not None or flt.adapter is not None or flt.ack_overdue is not None:
        sub = ["d.filing_seq = f.seq"]
        if flt.ack_overdue is not None:
            sub.append(f"d.ack_overdue = {arg(flt.ack_overdue)}")
        if flt.state is not None:
            sub.append(f"d.state = {arg(flt.state.value)}")
        if flt.adapter is not None:
            sub.append(f"d.adapter = {arg(flt.adapter)}")
        where.append(f"EXISTS (SELECT 1 FROM deliveries d WHERE {' AND '.join(sub)})")
    sql = f"SELECT {pg_sql.F_COLS} FROM filings f"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY f.seq DESC LIMIT {arg(limit + 1)}"
    found = list(await conn.fetch(sql, *params))
    more = len(found) > limit
    found = found[:limit]
    deliveries = await deliveries_of(conn, [r[0] for r in found])
    items = [rows.filing_view(r, deliveries[r[0]]) for r in found]
    next_cursor = rows.encode_cursor(found[-1][0]) if more and found else None
    return models.Page(items=items, next_cursor=next_cursor)
