"""SQLite transaction bodies of operator actions: retry or cancel a filing, bulk retry or
cancel (issue 7), and recomputing ``blocked`` along an ordering key after them.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from gateway import errors
from gateway.rules import lifecycle
from gateway.store import base, logic, rows, sqlite_audit, sqlite_ops, sqlite_schema
from gateway.store.base import Actor


def reblock(
    conn: sqlite3.Connection,
    trail: sqlite_audit.Audit,
    actor: Actor,
    adapter: str,
    ordering_key: str,
    now_us: int,
) -> set[int]:
    """Recompute ``blocked`` for one ordering key after an operator action."""
    touched: set[int] = set()
    blocked_by_predecessor = False
    for seq, delivery_id, filing_id, filing_seq, state in conn.execute(
        f"SELECT seq, id, filing_id, filing_seq, state FROM deliveries WHERE adapter = ? "
        f"AND ordering_key = ? AND state NOT IN {sqlite_schema.DONE_SQL} ORDER BY seq",
        (adapter, ordering_key),
    ).fetchall():
        if state in ("dead", "rejected"):
            blocked_by_predecessor = True
            continue
        new = None
        if blocked_by_predecessor and state in ("pending", "waiting_retry", "deferred"):
            new = "blocked"
        elif not blocked_by_predecessor and state == "blocked":
            new = "pending"
        if new is not None:
            conn.execute(
                "UPDATE deliveries SET state = ?, available_at = ?, updated_at = ? WHERE seq = ?",
                (new, now_us, now_us, seq),
            )
            trail.add(
                f"delivery.{'blocked' if new == 'blocked' else 'unblocked'}",
                actor=actor,
                filing_id=filing_id,
                delivery_id=delivery_id,
                details={"adapter": adapter},
            )
            touched.add(filing_seq)
    return touched


def filing_seq_of(conn: sqlite3.Connection, filing_id: str) -> int:
    row = conn.execute("SELECT seq FROM filings WHERE id = ?", (filing_id,)).fetchone()
    if row is None:
        raise errors.NotFound(f"no filing {filing_id}", details={"id": filing_id})
    return int(row[0])


def refuse_in_flight(
    conn: sqlite3.Connection, filing_seq: int, filing_id: str, event: lifecycle.Event
) -> None:
    """A send in progress stops an operator action on its filing whole (409)."""
    rows_ = conn.execute(
        "SELECT id, state, available_at FROM deliveries WHERE filing_seq = ?", (filing_seq,)
    ).fetchall()
    logic.refuse_in_flight(filing_id, event, [(r[0], r[1], rows.dt(r[2])) for r in rows_])


def retry_filing(
    conn: sqlite3.Connection, filing_id: str, actor: Actor, now: datetime
) -> base.Action:
    filing_seq = filing_seq_of(conn, filing_id)
    refuse_in_flight(conn, filing_seq, filing_id, lifecycle.Event.OPERATOR_RETRY)
    now_us = rows.us(now)
    changed = conn.execute(
        "UPDATE deliveries SET state = 'pending', attempts = 0, probe_failures = 0, "
        "available_at = ?, last_error = NULL, lease_owner = NULL, updated_at = ? "
        f"WHERE filing_seq = ? AND state IN {logic.RETRY_FROM_SQL} "
        "RETURNING id, adapter, ordering_key",
        (now_us, now_us, filing_seq),
    ).fetchall()
    if not changed:
        raise errors.Refused(
            "conflict",
            f"filing {filing_id} has no dead or blocked delivery to retry",
            details={"id": filing_id},
        )
    trail = sqlite_audit.Audit(conn, now)
    touched = {filing_seq}
    for delivery_id, adapter, _ in changed:
        trail.add(
            "delivery.retried",
            actor=actor,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={"adapter": adapter},
        )
    for adapter, ordering_key in {(r[1], r[2]) for r in changed}:
        touched |= reblock(conn, trail, actor, adapter, ordering_key, now_us)
    for fs in touched:
        sqlite_ops.refresh_status(conn, fs, now_us)
    return base.Action(filing_id, [r[0] for r in changed])


def cancel_filing(
    conn: sqlite3.Connection, filing_id: str, actor: Actor, now: datetime
) -> base.Action:
    filing_seq = filing_seq_of(conn, filing_id)
    refuse_in_flight(conn, filing_seq, filing_id, lifecycle.Event.OPERATOR_CANCEL)
    now_us = rows.us(now)
    changed = conn.execute(
        "UPDATE deliveries SET state = 'cancelled', lease_owner = NULL, "
        "lease_token = lease_token + 1, updated_at = ? WHERE filing_seq = ? AND state IN "
        f"{logic.CANCEL_FROM_SQL} RETURNING id, adapter, ordering_key",
        (now_us, filing_seq),
    ).fetchall()
    if not changed:
        raise errors.Refused(
            "conflict",
            f"filing {filing_id} has nothing left to cancel",
            details={"id": filing_id},
        )
    trail = sqlite_audit.Audit(conn, now)
    touched = {filing_seq}
    for delivery_id, adapter, _ in changed:
        trail.add(
            "delivery.cancelled",
            actor=actor,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={"adapter": adapter},
        )
    for adapter, ordering_key in {(r[1], r[2]) for r in changed}:
        touched |= reblock(conn, trail, actor, adapter, ordering_key, now_us)
    for fs in touched:
        sqlite_ops.refresh_status(conn, fs, now_us)
    return base.Action(filing_id, [r[0] for r in changed])


def _bulk_where(action: str, flt: base.BulkFilter) -> tuple[str, list[Any]]:
    allowed = base.BULK_FROM[action]
    if flt.state is not None and flt.state.value not in allowed:
        raise errors.InvalidInput(
            f"{action} applies to deliveries that are {', '.join(allowed)}",
            details=[{"loc": "body.state", "msg": f"one of {', '.join(allowed)}"}],
        )
    states = (flt.state.value,) if flt.state is not None else allowed
    where = [f"d.state IN ({','.join('?' * len(states))})"]
    params: list[Any] = list(states)
    if flt.adapter is not None:
        where.append("d.adapter = ?")
        params.append(flt.adapter)
    if flt.not_after is not None:
        where.append("d.updated_at <= ?")
        params.append(rows.us(flt.not_after))
    sub = []
    for column, value in (("f.filing_type", flt.filing_type), ("f.environment", flt.environment)):
        if value is not None:
            sub.append(f"{column} = ?")
            params.append(value.value)
    if sub:
        where.append(f"d.filing_seq IN (SELECT f.seq FROM filings f WHERE {' AND '.join(sub)})")
    return " AND ".join(where), params


def bulk_select(
    conn: sqlite3.Connection, action: str, flt: base.BulkFilter, limit: int, dry_run: bool
) -> base.BulkResult:
    where, params = _bulk_where(action, flt)
    (matched,) = conn.execute(f"SELECT COUNT(*) FROM deliveries d WHERE {where}", params).fetchone()
    found = conn.execute(
        f"SELECT d.id, d.filing_id, d.adapter, d.state FROM deliveries d WHERE {where} "
        "ORDER BY d.seq LIMIT ?",
        [*params, limit],
    ).fetchall()
    return base.BulkResult(
        matched=int(matched), deliveries=[tuple(r) for r in found], dry_run=dry_run
    )


def bulk_action(
    conn: sqlite3.Connection,
    action: str,
    flt: base.BulkFilter,
    actor: Actor,
    now: datetime,
    reason: str,
    limit: int,
) -> base.BulkResult:
    """One chunk of a bulk retry or cancel, audited per delivery and once as a whole."""
    chosen = bulk_select(conn, action, flt, limit, False)
    if not chosen.deliveries:
        return chosen
    now_us = rows.us(now)
    ids_ = [d[0] for d in chosen.deliveries]
    marks = ",".join("?" * len(ids_))
    if action == "retry":
        sql = (
            "UPDATE deliveries SET state = 'pending', attempts = 0, probe_failures = 0, "
            "available_at = ?, last_error = NULL, lease_owner = NULL, updated_at = ? "
        )
        params: list[Any] = [now_us, now_us]
    else:
        sql = (
            "UPDATE deliveries SET state = 'cancelled', lease_owner = NULL, "
            "lease_token = lease_token + 1, updated_at = ? "
        )
        params = [now_us]
    changed = conn.execute(
        sql + f"WHERE id IN ({marks}) RETURNING id, filing_id, filing_seq, adapter, ordering_key",
        [*params, *ids_],
    ).fetchall()
    trail = sqlite_audit.Audit(conn, now)
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
    for adapter, ordering_key in {(r[3], r[4]) for r in changed}:
        touched |= reblock(conn, trail, actor, adapter, ordering_key, now_us)
    for fs in touched:
        sqlite_ops.refresh_status(conn, fs, now_us)
    trail.add(
        f"operator.bulk_{action}",
        actor=actor,
        details={
            "reason": reason,
            "changed": len(changed),
            "filter": logic.bulk_filter(flt),
        },
    )
    return chosen
