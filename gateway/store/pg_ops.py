"""What is left of the PostgreSQL life-cycle bodies (accept, claim, settling and release
are in ``accept``/``dispatch``, written once): operator actions and the helpers that
``pg_acks``, ``pg_monitoring`` and ``pg_outages`` still call until they fold (then this
module goes). Audit rows are collected while a body runs and appended at its end by
``pg_audit.Trail.flush``, under the audit advisory lock.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from gateway import errors, models
from gateway.audit import redact
from gateway.rules import lifecycle
from gateway.store import base, logic, pg_audit, pg_callbacks, pg_sql, rows
from gateway.store.base import Actor

Conn = asyncpg.Connection


async def refresh_status(conn: Conn, filing_seqs: set[int], now_us: int) -> None:
    """Re-derive the filings' statuses; queue a callback where one changed (schema v5)."""
    await refresh_statuses(conn, dict.fromkeys(filing_seqs, now_us))


async def refresh_statuses(conn: Conn, stamps: dict[int, int]) -> None:
    """``refresh_status`` with each filing's own time (filing seq → µs): a coalesced
    transaction of several callers.

    The filing rows are locked first (in seq order), so the delivery states read next
    include every change committed by a concurrent refresher of the same filing, and
    ``previous_status`` is the status the last one wrote. Set-based: three statements
    whatever the number of filings.
    """
    if not stamps:
        return
    seqs = sorted(stamps)
    before = {r[0]: (r[1], r[2]) for r in await conn.fetch(pg_sql.LOCK_FILINGS, seqs)}
    found = await conn.fetch(pg_sql.FILING_STATES, seqs)
    # in seq order, the order flag_at_risk locks filings in too: fewer deadlocks
    changes = [
        (models.derive_status([models.DeliveryState(s) for s in states]).value, stamps[fs], fs)
        for fs, states in sorted(found)
    ]
    if not changes:
        return
    await conn.execute(
        pg_sql.SET_STATUSES,
        [c[0] for c in changes],
        [c[1] for c in changes],
        [c[2] for c in changes],
    )
    for status, at_us, fs in changes:
        previous, callback_url = before.get(fs, (status, None))
        if callback_url and previous != status:
            await pg_callbacks.enqueue_callback(conn, fs, previous, status, at_us)


async def lock_keys(conn: Conn, keys: set[str]) -> None:
    """Take the ordering-key locks, in one fixed order so two transactions cannot deadlock."""
    if keys:
        await conn.execute(pg_sql.LOCK_KEYS, sorted(keys))


# --- operator actions -------------------------------------------------------------------


async def reblock(
    conn: Conn, trail: pg_audit.Trail, actor: Actor, adapter: str, ordering_key: str, now_us: int
) -> set[int]:
    """Recompute ``blocked`` for one ordering key after an operator action."""
    touched: set[int] = set()
    blocked_by_predecessor = False
    for seq, delivery_id, filing_id, filing_seq, state in await conn.fetch(
        pg_sql.KEY_ROWS, adapter, ordering_key
    ):
        if state in ("dead", "rejected"):
            blocked_by_predecessor = True
            continue
        new = None
        if blocked_by_predecessor and state in ("pending", "waiting_retry", "deferred"):
            new = "blocked"
        elif not blocked_by_predecessor and state == "blocked":
            new = "pending"
        if new is not None:
            await conn.execute(pg_sql.SET_STATE, new, now_us, seq)
            trail.add(
                f"delivery.{'blocked' if new == 'blocked' else 'unblocked'}",
                actor=actor,
                filing_id=filing_id,
                delivery_id=delivery_id,
                details={"adapter": adapter},
            )
            touched.add(filing_seq)
    return touched


async def _filing_seq(conn: Conn, filing_id: str) -> tuple[int, str]:
    row = await conn.fetchrow("SELECT seq, ordering_key FROM filings WHERE id = $1", filing_id)
    if row is None:
        raise errors.NotFound(f"no filing {filing_id}", details={"id": filing_id})
    return int(row[0]), str(row[1])


async def refuse_in_flight(
    conn: Conn, filing_seq: int, filing_id: str, event: lifecycle.Event
) -> None:
    """A send in progress stops an operator action on its filing whole (409)."""
    found = await conn.fetch(pg_sql.FILING_DELIVERIES, filing_seq)
    logic.refuse_in_flight(filing_id, event, [(r[0], r[1], rows.dt(r[2])) for r in found])


async def operator_action(
    conn: Conn,
    kind: str,
    filing_id: str,
    actor: Actor,
    now: datetime,
    redactor: redact.Redactor,
) -> base.Action:
    """``retry`` (dead/blocked → pending) or ``cancel``; then re-derive blocking per key."""
    filing_seq, ordering_key = await _filing_seq(conn, filing_id)
    await lock_keys(conn, {ordering_key})
    event = lifecycle.Event.OPERATOR_RETRY if kind == "retry" else lifecycle.Event.OPERATOR_CANCEL
    await refuse_in_flight(conn, filing_seq, filing_id, event)
    now_us = rows.us(now)
    changed = await conn.fetch(
        pg_sql.RETRY if kind == "retry" else pg_sql.CANCEL, now_us, filing_seq
    )
    if not changed:
        what = (
            "no dead or blocked delivery to retry" if kind == "retry" else "nothing left to cancel"
        )
        raise errors.Refused(
            "conflict", f"filing {filing_id} has {what}", details={"id": filing_id}
        )
    trail = pg_audit.Trail(now, redactor)
    touched = {filing_seq}
    for delivery_id, adapter, _ in changed:
        trail.add(
            "delivery.retried" if kind == "retry" else "delivery.cancelled",
            actor=actor,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={"adapter": adapter},
        )
    for adapter, key in sorted({(r[1], r[2]) for r in changed}):
        touched |= await reblock(conn, trail, actor, adapter, key, now_us)
    await refresh_status(conn, touched, now_us)
    await trail.flush(conn)
    await conn.execute("SELECT pg_notify($1, $2)", pg_sql.CHANNEL, kind)
    return base.Action(filing_id, [r[0] for r in changed])
