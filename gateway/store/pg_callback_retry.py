"""Operator retry of status callbacks on PostgreSQL (see ``callback_retry``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from gateway.store import base, callback_retry, pg_audit, pg_callbacks, pg_mixin, rows
from gateway.store.callback_retry import CallbackRetry, CallbackSelection


def _where(sel: CallbackSelection) -> tuple[str, list[Any]]:
    if sel.ids:
        return "id = ANY($1::text[]) AND state IN ('dead','waiting_retry')", [list(sel.ids)]
    where, params = ["state = 'dead'"], []
    if sel.filing_id is not None:
        params.append(sel.filing_id)
        where.append(f"filing_id = ${len(params)}")
    if sel.not_after is not None:
        params.append(rows.us(sel.not_after))
        where.append(f"updated_at <= ${len(params)}")
    return " AND ".join(where), params


async def _view(conn: asyncpg.Connection, filing_id: str, cb_id: str) -> Any:
    """The event as ``GET /v1/callbacks`` shows it (a filing has a handful of events)."""
    views = await pg_callbacks._list(conn, filing_id, None, 10_000)
    return next(v for v in views if v.id == cb_id)


async def retry_callbacks(
    conn: asyncpg.Connection,
    sel: CallbackSelection,
    actor: base.Actor,
    now: datetime,
    reason: str,
) -> CallbackRetry:
    if sel.ids:
        found = await conn.fetch(
            "SELECT id, state FROM callbacks WHERE id = ANY($1::text[])", list(sel.ids)
        )
        callback_retry.check_ids(sel, {r[0]: r[1] for r in found})
    where, params = _where(sel)
    matched = await conn.fetchval(f"SELECT COUNT(*) FROM callbacks WHERE {where}", *params)
    chosen = await conn.fetch(
        f"SELECT seq, id, filing_id, event, state, attempts FROM callbacks WHERE {where} "
        f"ORDER BY seq LIMIT ${len(params) + 1} FOR UPDATE",
        *params,
        sel.limit,
    )
    if sel.dry_run:
        views = [await _view(conn, r[2], r[1]) for r in chosen]
        return CallbackRetry(matched=matched, callbacks=views, remaining=matched)
    now_us = rows.us(now)
    trail = pg_audit.Trail(now)
    views = []
    for seq, cb_id, filing_id, event, state, attempts in chosen:
        await conn.execute(
            "UPDATE callbacks SET state = CASE WHEN attempts = 0 THEN 'pending' "
            "ELSE 'waiting_retry' END, available_at = $1, lease_owner = NULL, updated_at = $1 "
            "WHERE seq = $2",
            now_us,
            seq,
        )
        trail.add(
            "callback.retried",
            actor=actor,
            filing_id=filing_id,
            details=callback_retry.audit_details(cb_id, event, state, attempts, reason),
        )
        views.append(await _view(conn, filing_id, cb_id))
    await trail.flush(conn)
    return CallbackRetry(matched=matched, callbacks=views, remaining=matched - len(chosen))


class CallbackRetryMixin(pg_mixin.Transactional):
    """The operator callback retry of ``PostgresStore``."""

    async def retry_callbacks(
        self, sel: CallbackSelection, *, actor: base.Actor, now: datetime, reason: str
    ) -> CallbackRetry:
        return await self._write(lambda c: retry_callbacks(c, sel, actor, now, reason))
