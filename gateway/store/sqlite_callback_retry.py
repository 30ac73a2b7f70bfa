"""Operator retry of status callbacks on SQLite (see ``callback_retry``)."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from gateway.store import base, callback_retry, rows, sqlite_audit, sqlite_callbacks
from gateway.store.callback_retry import CallbackRetry, CallbackSelection


def _where(sel: CallbackSelection) -> tuple[str, list[Any]]:
    if sel.ids:
        marks = ",".join("?" for _ in sel.ids)
        return f"id IN ({marks}) AND state IN ('dead','waiting_retry')", list(sel.ids)
    where, params = ["state = 'dead'"], []
    if sel.filing_id is not None:
        where.append("filing_id = ?")
        params.append(sel.filing_id)
    if sel.not_after is not None:
        where.append("updated_at <= ?")
        params.append(rows.us(sel.not_after))
    return " AND ".join(where), params


def retry_callbacks(
    conn: sqlite3.Connection,
    sel: CallbackSelection,
    actor: base.Actor,
    now: datetime,
    reason: str,
) -> CallbackRetry:
    if sel.ids:
        marks = ",".join("?" for _ in sel.ids)
        found = dict(
            conn.execute(f"SELECT id, state FROM callbacks WHERE id IN ({marks})", sel.ids)
        )
        callback_retry.check_ids(sel, found)
    where, params = _where(sel)
    matched = conn.execute(f"SELECT COUNT(*) FROM callbacks WHERE {where}", params).fetchone()[0]
    chosen = conn.execute(
        f"SELECT seq, id, filing_id, event, state, attempts FROM callbacks WHERE {where} "
        "ORDER BY seq LIMIT ?",
        [*params, sel.limit],
    ).fetchall()
    if sel.dry_run:
        views = [_view(conn, r[2], r[1]) for r in chosen]
        return CallbackRetry(matched=matched, callbacks=views, remaining=matched)
    now_us = rows.us(now)
    trail = sqlite_audit.Audit(conn, now)
    views = []
    for seq, cb_id, filing_id, event, state, attempts in chosen:
        conn.execute(
            "UPDATE callbacks SET state = CASE WHEN attempts = 0 THEN 'pending' "
            "ELSE 'waiting_retry' END, available_at = ?, lease_owner = NULL, updated_at = ? "
            "WHERE seq = ?",
            (now_us, now_us, seq),
        )
        trail.add(
            "callback.retried",
            actor=actor,
            filing_id=filing_id,
            details=callback_retry.audit_details(cb_id, event, state, attempts, reason),
        )
        views.append(_view(conn, filing_id, cb_id))
    return CallbackRetry(matched=matched, callbacks=views, remaining=matched - len(chosen))


def _view(conn: sqlite3.Connection, filing_id: str, cb_id: str) -> Any:
    """The event as ``GET /v1/callbacks`` shows it (a filing has a handful of events)."""
    views = sqlite_callbacks.list_callbacks(conn, filing_id, None, 10_000)
    return next(v for v in views if v.id == cb_id)
