"""Announced outages on SQLite (issue 3): add, list, remove; deferring the due deliveries
of a held adapter; flagging filings whose deadline is at risk.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from gateway import errors, ids
from gateway.rules import outages
from gateway.store import base, logic, rows, sqlite_audit, sqlite_ops, sqlite_schema
from gateway.store.base import Actor

_O_COLS = (
    "id, adapter, environment, starts_at, ends_at, reason, reference, created_at, created_by, "
    "removed_at"
)


def add_outage(
    conn: sqlite3.Connection, req: outages.OutageRequest, actor: Actor, now: datetime
) -> outages.Outage:
    outage = outages.Outage(
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
    conn.execute(
        "INSERT INTO outages (id, adapter, environment, starts_at, ends_at, reason, reference, "
        "created_at, created_by) VALUES (?,?,?,?,?,?,?,?,?)",
        (
            outage.id,
            outage.adapter,
            None if outage.environment is None else outage.environment.value,
            rows.us(outage.starts_at),
            rows.us_or_none(outage.ends_at),
            outage.reason,
            outage.reference,
            rows.us(now),
            actor.name,
        ),
    )
    sqlite_audit.Audit(conn, now).add(
        "outage.added", actor=actor, details=logic.outage_details(outage)
    )
    return outage


def remove_outage(
    conn: sqlite3.Connection, outage_id: str, actor: Actor, now: datetime
) -> outages.Outage:
    row = conn.execute(f"SELECT {_O_COLS} FROM outages WHERE id = ?", (outage_id,)).fetchone()
    if row is None:
        raise errors.NotFound(f"no outage {outage_id}", details={"id": outage_id})
    if row[9] is not None:
        raise errors.Conflict(f"outage {outage_id} was already removed", details={"id": outage_id})
    now_us = rows.us(now)
    conn.execute(
        "UPDATE outages SET removed_at = ?, removed_by = ? WHERE id = ?",
        (now_us, actor.name, outage_id),
    )
    outage = rows.outage(row).model_copy(update={"removed_at": now})
    # what it deferred may go at once; anything still held is deferred again by the gate
    scope, params = ("adapter = ?", [outage.adapter])
    if outage.adapter is None:
        scope = "filing_seq IN (SELECT seq FROM filings WHERE environment = ?)"
        params = [None if outage.environment is None else outage.environment.value]
    released = conn.execute(
        f"UPDATE deliveries SET available_at = ?, updated_at = ? "
        f"WHERE state = 'deferred' AND available_at > ? AND {scope}",
        [now_us, now_us, now_us, *params],
    ).rowcount
    sqlite_audit.Audit(conn, now).add(
        "outage.removed",
        actor=actor,
        details={**logic.outage_details(outage), "released_deliveries": released},
    )
    return outage


def defer_held(
    conn: sqlite3.Connection,
    adapter: str,
    environment: str | None,
    until: datetime,
    reason: str,
    now: datetime,
) -> int:
    """Move the due deliveries of a held adapter (or environment) to ``deferred``."""
    now_us, until_us = rows.us(now), rows.us(until)
    sql = (
        "SELECT seq, id, filing_id, filing_seq, state, attempts FROM deliveries "
        "WHERE adapter = ? AND state IN ('pending','waiting_retry','deferred') "
        "AND available_at <= ?"
    )
    params: list[Any] = [adapter, now_us]
    if environment is not None:
        sql += " AND filing_seq IN (SELECT seq FROM filings WHERE environment = ?)"
        params.append(environment)
    found = conn.execute(sql, params).fetchall()
    if not found:
        return 0
    conn.executemany(
        "UPDATE deliveries SET state = 'deferred', available_at = ?, last_error = ?, "
        "updated_at = ? WHERE seq = ?",
        [(until_us, reason, now_us, r[0]) for r in found],
    )
    trail = sqlite_audit.Audit(conn, now)
    touched = set()
    for _, delivery_id, filing_id, filing_seq, state, attempts in found:
        if state == "deferred":
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
    for fs in touched:
        sqlite_ops.refresh_status(conn, fs, now_us)
    return len(found)


def flag_at_risk(
    conn: sqlite3.Connection,
    now: datetime,
    due_before: datetime,
    windows: list[base.RiskWindow],
) -> list[tuple[str, datetime]]:
    """Flag unsettled filings whose due_by is near or inside a known outage; once each."""
    now_us = rows.us(now)
    pending = (
        f"at_risk_at IS NULL AND due_by IS NOT NULL AND status NOT IN {sqlite_schema.SETTLED_SQL}"
    )
    checks: list[tuple[str, list[Any], str]] = [
        ("due_by < ?", [rows.us(due_before)], "due_by within the at-risk margin")
    ]
    for w in windows:
        cond = "due_by >= ? AND due_by < ?"
        params: list[Any] = [rows.us(w.start), rows.us(w.end)]
        if w.adapter is not None:
            cond += (
                f" AND EXISTS (SELECT 1 FROM deliveries d WHERE d.filing_seq = filings.seq "
                f"AND d.adapter = ? AND d.state NOT IN {sqlite_schema.SETTLED_SQL})"
            )
            params.append(w.adapter)
        if w.environment is not None:
            cond += " AND environment = ?"
            params.append(w.environment)
        checks.append((cond, params, w.reason))
    flagged: list[tuple[str, datetime]] = []
    trail: sqlite_audit.Audit | None = None
    for cond, params, reason in checks:
        found = conn.execute(
            f"UPDATE filings SET at_risk_at = ? WHERE {pending} AND {cond} RETURNING id, due_by",
            [now_us, *params],
        ).fetchall()
        for filing_id, due_by in found:
            trail = trail or sqlite_audit.Audit(conn, now)
            trail.add(
                "filing.at_risk",
                actor=base.SYSTEM,
                filing_id=filing_id,
                details={"due_by": rows.iso(rows.dt(due_by)), "reason": reason},
            )
            flagged.append((filing_id, rows.dt(due_by)))
    return flagged


def list_outages(
    conn: sqlite3.Connection, now: datetime, include_past: bool
) -> list[outages.Outage]:
    sql = f"SELECT {_O_COLS} FROM outages WHERE removed_at IS NULL"
    params: list[Any] = []
    if not include_past:
        sql += " AND (ends_at IS NULL OR ends_at > ?)"
        params.append(rows.us(now))
    return [rows.outage(r) for r in conn.execute(sql + " ORDER BY starts_at, seq", params)]
