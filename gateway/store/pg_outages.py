"""Outages and deadlines on PostgreSQL: announced outages, held deliveries, at-risk flags.

Same semantics and audit rows as ``sqlite.py``; each body runs in one transaction and
its audit rows commit with the change. How each stays right with several processes:

* ``remove_outage`` locks the outage row, so of two concurrent removals one wins and the
  other sees it removed (409); deliveries it releases are announced with NOTIFY;
* ``defer_held`` locks the rows it moves ``FOR UPDATE SKIP LOCKED`` and re-checks their
  state, so it never touches a delivery another process is claiming (that claim's own
  gate defers it) and never moves one that was claimed meanwhile;
* ``flag_at_risk`` locks candidate filings in seq order and re-checks ``at_risk_at IS
  NULL`` under the lock, so two processes flag (and audit) a filing once between them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from gateway import errors, ids
from gateway.audit import redact
from gateway.rules import outages
from gateway.store import base, logic, pg_audit, pg_ops, pg_sql, rows
from gateway.store.base import Actor

Conn = asyncpg.Connection

O_COLS = (
    "id, adapter, environment, starts_at, ends_at, reason, reference, created_at, created_by, "
    "removed_at"
)
_HELD = "('pending','waiting_retry','deferred')"


async def add_outage(
    conn: Conn,
    req: outages.OutageRequest,
    actor: Actor,
    now: datetime,
    redactor: redact.Redactor,
) -> outages.Outage:
    o = outages.Outage(
        id=ids.new_id("out"),
        adapter=req.adapter,
        environment=req.environment,
        starts_at=req.starts_at or now,
        ends_at=req.ends_at,
        reason=req.reason,
        reference=req.reference,
        created_at=now,
        created_by=actor.name,
    )
    await conn.execute(
        "INSERT INTO outages (id, adapter, environment, starts_at, ends_at, reason, reference, "
        "created_at, created_by) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
        o.id,
        o.adapter,
        None if o.environment is None else o.environment.value,
        rows.us(o.starts_at),
        rows.us_or_none(o.ends_at),
        o.reason,
        o.reference,
        rows.us(now),
        actor.name,
    )
    trail = pg_audit.Trail(now, redactor)
    trail.add("outage.added", actor=actor, details=logic.outage_details(o))
    await trail.flush(conn)
    return o


async def list_outages(conn: Conn, now: datetime, include_past: bool) -> list[outages.Outage]:
    sql = f"SELECT {O_COLS} FROM outages WHERE removed_at IS NULL"
    params: list[Any] = []
    if not include_past:
        sql += " AND (ends_at IS NULL OR ends_at > $1)"
        params.append(rows.us(now))
    return [rows.outage(r) for r in await conn.fetch(sql + " ORDER BY starts_at, seq", *params)]


async def remove_outage(
    conn: Conn, outage_id: str, actor: Actor, now: datetime, redactor: redact.Redactor
) -> outages.Outage:
    row = await conn.fetchrow(f"SELECT {O_COLS} FROM outages WHERE id = $1 FOR UPDATE", outage_id)
    if row is None:
        raise errors.NotFound(f"no outage {outage_id}", details={"id": outage_id})
    if row[9] is not None:
        raise errors.Conflict(f"outage {outage_id} was already removed", details={"id": outage_id})
    now_us = rows.us(now)
    await conn.execute(
        "UPDATE outages SET removed_at = $1, removed_by = $2 WHERE id = $3",
        now_us,
        actor.name,
        outage_id,
    )
    o = rows.outage(row).model_copy(update={"removed_at": now})
    # what it deferred may go at once; anything still held is deferred again by the gate
    if o.adapter is not None:
        scope, value = "adapter = $2", o.adapter
    else:
        assert o.environment is not None  # the CHECK constraint: one of the two
        scope = "filing_seq IN (SELECT seq FROM filings WHERE environment = $2)"
        value = o.environment.value
    status = await conn.execute(
        "UPDATE deliveries SET available_at = $1, updated_at = $1 "
        f"WHERE state = 'deferred' AND available_at > $1 AND {scope}",
        now_us,
        value,
    )
    released = int(status.rsplit(" ", 1)[-1])
    trail = pg_audit.Trail(now, redactor)
    trail.add(
        "outage.removed",
        actor=actor,
        details={**logic.outage_details(o), "released_deliveries": released},
    )
    await trail.flush(conn)
    if released:
        await conn.execute("SELECT pg_notify($1, 'outage_removed')", pg_sql.CHANNEL)
    return o


async def defer_held(
    conn: Conn,
    adapter: str,
    environment: str | None,
    until: datetime,
    reason: str,
    now: datetime,
    redactor: redact.Redactor,
) -> int:
    """Move the due deliveries of a held adapter (or environment) to ``deferred``."""
    now_us, until_us = rows.us(now), rows.us(until)
    scope = ""
    params: list[Any] = [adapter, now_us, until_us, reason]
    if environment is not None:
        scope = "AND d.filing_seq IN (SELECT seq FROM filings WHERE environment = $5)"
        params.append(environment)
    found = await conn.fetch(
        f"""
WITH held AS (
    SELECT d.seq, d.state AS was FROM deliveries d
    WHERE d.adapter = $1 AND d.state IN {_HELD} AND d.available_at <= $2 {scope}
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries u SET state = 'deferred', available_at = $3, last_error = $4, updated_at = $2
FROM held WHERE u.seq = held.seq
RETURNING u.id, u.filing_id, u.filing_seq, held.was, u.attempts, u.seq
""",
        *params,
    )
    if not found:
        return 0
    trail = pg_audit.Trail(now, redactor)
    touched = set()
    for delivery_id, filing_id, filing_seq, was, attempts, _ in sorted(found, key=lambda r: r[5]):
        if was == "deferred":
            continue  # only its time moved: not a state change
        trail.add(
            "delivery.deferred",
            actor=base.SYSTEM,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={
                "adapter": adapter,
                "attempts": attempts,
                "reason": reason,
                "until": rows.iso(until),
            },
        )
        touched.add(filing_seq)
    await pg_ops.refresh_status(conn, touched, now_us)
    await trail.flush(conn)
    return len(found)


async def flag_at_risk(
    conn: Conn,
    now: datetime,
    due_before: datetime,
    windows: list[base.RiskWindow],
    redactor: redact.Redactor,
) -> list[tuple[str, datetime]]:
    """Flag unsettled filings whose due_by is near or inside a known outage; once each."""
    now_us = rows.us(now)
    pending = f"f.at_risk_at IS NULL AND f.due_by IS NOT NULL AND f.status NOT IN {pg_sql.SETTLED}"
    checks: list[tuple[str, list[Any], str]] = [
        ("f.due_by < $2", [rows.us(due_before)], "due_by within the at-risk margin")
    ]
    for w in windows:
        params: list[Any] = [rows.us(w.start), rows.us(w.end)]
        cond = "f.due_by >= $2 AND f.due_by < $3"
        if w.adapter is not None:
            params.append(w.adapter)
            cond += (
                f" AND EXISTS (SELECT 1 FROM deliveries d WHERE d.filing_seq = f.seq "
                f"AND d.adapter = ${len(params) + 1} AND d.state NOT IN {pg_sql.SETTLED})"
            )
        if w.environment is not None:
            params.append(w.environment)
            cond += f" AND f.environment = ${len(params) + 1}"
        checks.append((cond, params, w.reason))
    flagged: list[tuple[str, datetime]] = []
    trail = pg_audit.Trail(now, redactor)
    for cond, params, reason in checks:
        found = await conn.fetch(
            f"""
WITH due AS (
    SELECT f.seq FROM filings f WHERE {pending} AND {cond} ORDER BY f.seq FOR UPDATE OF f
)
UPDATE filings u SET at_risk_at = $1 FROM due
WHERE u.seq = due.seq AND u.at_risk_at IS NULL
RETURNING u.seq, u.id, u.due_by
""",
            now_us,
            *params,
        )
        for _, filing_id, due_by in sorted(found):
            trail.add(
                "filing.at_risk",
                actor=base.SYSTEM,
                filing_id=filing_id,
                details={"due_by": rows.iso(rows.dt(due_by)), "reason": reason},
            )
            flagged.append((filing_id, rows.dt(due_by)))
    await trail.flush(conn)
    return flagged
