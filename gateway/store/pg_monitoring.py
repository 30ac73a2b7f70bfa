"""Bulk retry/cancel on PostgreSQL (issue 7), as ``sqlite``'s (queue statistics: ``reads``).

A bulk chunk takes the ordering-key locks of the deliveries it selected, then selects
them again ``FOR UPDATE`` (the filter re-checked on the latest row versions), so a
delivery finished or claimed meanwhile by another process is changed only if it still
matches; cancelling an in-flight delivery bumps its lease token, which fences the
process that holds it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from gateway import errors
from gateway.store import base, logic, pg_audit, pg_mixin, pg_ops, pg_sql, rows
from gateway.store.base import Actor

Conn = asyncpg.Connection

# the state guard again: a delivery chosen in this transaction may have been claimed since
_RETRY = f"""
UPDATE deliveries SET state = 'pending', attempts = 0, probe_failures = 0, available_at = $1,
    last_error = NULL, lease_owner = NULL, updated_at = $1
WHERE id = ANY($2::text[]) AND state IN {logic.RETRY_FROM_SQL}
RETURNING id, filing_id, filing_seq, adapter, ordering_key
"""
_CANCEL = f"""
UPDATE deliveries SET state = 'cancelled', lease_owner = NULL, lease_token = lease_token + 1,
    updated_at = $1
WHERE id = ANY($2::text[]) AND state IN {logic.CANCEL_FROM_SQL}
RETURNING id, filing_id, filing_seq, adapter, ordering_key
"""


def _where(action: str, flt: base.BulkFilter) -> tuple[str, list[Any]]:
    allowed = base.BULK_FROM[action]
    if flt.state is not None and flt.state.value not in allowed:
        raise errors.InvalidInput(
            f"{action} applies to deliveries that are {', '.join(allowed)}",
            details=[{"loc": "body.state", "msg": f"one of {', '.join(allowed)}"}],
        )
    params: list[Any] = [[flt.state.value] if flt.state is not None else list(allowed)]
    where = ["d.state = ANY($1::text[])"]

    def arg(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    if flt.adapter is not None:
        where.append(f"d.adapter = {arg(flt.adapter)}")
    if flt.not_after is not None:
        where.append(f"d.updated_at <= {arg(rows.us(flt.not_after))}")
    sub = []
    for column, value in (("f.filing_type", flt.filing_type), ("f.environment", flt.environment)):
        if value is not None:
            sub.append(f"{column} = {arg(value.value)}")
    if sub:
        where.append(f"d.filing_seq IN (SELECT f.seq FROM filings f WHERE {' AND '.join(sub)})")
    return " AND ".join(where), params


async def _select(
    conn: Conn, action: str, flt: base.BulkFilter, limit: int, *, lock: bool = False
) -> list[tuple[str, str, str, str, str]]:
    where, params = _where(action, flt)
    found = await conn.fetch(
        f"SELECT d.id, d.filing_id, d.adapter, d.state, d.ordering_key FROM deliveries d "
        f"WHERE {where} ORDER BY d.seq LIMIT ${len(params) + 1}"
        + (" FOR UPDATE OF d" if lock else ""),
        *params,
        limit,
    )
    return [tuple(r) for r in found]  # type: ignore[misc]


async def _matched(conn: Conn, action: str, flt: base.BulkFilter) -> int:
    where, params = _where(action, flt)
    return int(await conn.fetchval(f"SELECT COUNT(*) FROM deliveries d WHERE {where}", *params))


async def _dry_run(conn: Conn, action: str, flt: base.BulkFilter, limit: int) -> base.BulkResult:
    matched = await _matched(conn, action, flt)
    chosen = await _select(conn, action, flt, limit)
    return base.BulkResult(matched=matched, deliveries=[r[:4] for r in chosen], dry_run=True)


async def _bulk_action(
    conn: Conn,
    action: str,
    flt: base.BulkFilter,
    actor: Actor,
    now: datetime,
    reason: str,
    limit: int,
) -> base.BulkResult:
    """One chunk of a bulk retry or cancel, audited per delivery and once as a whole."""
    matched = await _matched(conn, action, flt)
    candidates = await _select(conn, action, flt, limit)
    if not candidates:
        return base.BulkResult(matched=matched)
    await pg_ops.lock_keys(conn, {r[4] for r in candidates})
    chosen = await _select(conn, action, flt, limit, lock=True)
    if not chosen:
        return base.BulkResult(matched=matched)
    now_us = rows.us(now)
    changed = await conn.fetch(
        _RETRY if action == "retry" else _CANCEL, now_us, [r[0] for r in chosen]
    )
    trail = pg_audit.Trail(now)
    event = "delivery.retried" if action == "retry" else "delivery.cancelled"
    touched: set[int] = set()
    for delivery_id, filing_id, filing_seq, adapter, _ in changed:
        trail.add(
            event,
            actor=actor,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={"adapter": adapter, "reason": reason, "bulk": True},
        )
        touched.add(filing_seq)
    for adapter, key in sorted({(r[3], r[4]) for r in changed}):
        touched |= await pg_ops.reblock(conn, trail, actor, adapter, key, now_us)
    await pg_ops.refresh_status(conn, touched, now_us)
    trail.add(
        f"operator.bulk_{action}",
        actor=actor,
        details={
            "reason": reason,
            "changed": len(changed),
            "filter": logic.bulk_filter(flt),
        },
    )
    await trail.flush(conn)
    if action == "retry":
        await conn.execute("SELECT pg_notify($1, 'bulk_retry')", pg_sql.CHANNEL)
    return base.BulkResult(matched=matched, deliveries=[r[:4] for r in chosen])


class MonitoringMixin(pg_mixin.Transactional):
    """The monitoring methods of ``PostgresStore``."""

    async def bulk_action(
        self,
        action: str,
        flt: base.BulkFilter,
        *,
        actor: Actor,
        now: datetime,
        reason: str,
        limit: int,
        dry_run: bool = False,
    ) -> base.BulkResult:
        if dry_run:
            return await self._read(lambda c: _dry_run(c, action, flt, limit))
        return await self._write(lambda c: _bulk_action(c, action, flt, actor, now, reason, limit))
