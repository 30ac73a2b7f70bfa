"""SQLite transaction bodies for status callbacks (schema v5): a durable outbox of events.

``enqueue_callback`` runs inside whatever transaction changed a filing's status (it is
called from ``sqlite_ops.refresh_statuses``), so an event is queued exactly when the change
commits. Claims are leased and fenced like deliveries; events of one filing go one at a
time, in order.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta

from gateway import ids, models
from gateway.store import base, logic, rows, sqlite_audit

#: filing statuses a callback is sent for
CALLBACK_STATUSES = frozenset({"delivered", "acknowledged", "rejected", "dead", "cancelled"})
_CB_OPEN_SQL = "('pending','waiting_retry','in_flight')"


def enqueue_callback(
    conn: sqlite3.Connection, filing_seq: int, previous: str, status: str, now_us: int
) -> None:
    """Queue a status event for the filing's callback_url, in the caller's transaction."""
    if status not in CALLBACK_STATUSES:
        return
    f = conn.execute(
        "SELECT id, filing_type, environment, reference, callback_url FROM filings WHERE seq = ?",
        (filing_seq,),
    ).fetchone()
    event, body = logic.callback_event(
        f,
        conn.execute(
            "SELECT id, adapter, state, ack FROM deliveries WHERE filing_seq = ? ORDER BY seq",
            (filing_seq,),
        ),
        previous,
        status,
        now_us,
    )
    conn.execute(
        "INSERT INTO callbacks (id, filing_id, url, event, body, state, available_at, "
        "created_at, updated_at) VALUES (?,?,?,?,?,'pending',?,?,?)",
        (
            ids.new_id("evt"),
            f[0],
            f[4],
            event,
            json.dumps(body, separators=(",", ":")),
            now_us,
            now_us,
            now_us,
        ),
    )


def claim_callbacks(
    conn: sqlite3.Connection, owner: str, now: datetime, lease_s: float, limit: int
) -> list[base.CallbackClaim]:
    now_us = rows.us(now)
    until = rows.us(now + timedelta(seconds=lease_s))
    found = conn.execute(
        f"SELECT c.seq, c.id, c.filing_id, c.url, c.body, c.attempts, c.created_at "
        f"FROM callbacks c WHERE c.state IN {_CB_OPEN_SQL} AND c.available_at <= ? "
        f"AND NOT EXISTS (SELECT 1 FROM callbacks p WHERE p.filing_id = c.filing_id "
        f"AND p.seq < c.seq AND p.state IN {_CB_OPEN_SQL}) ORDER BY c.seq LIMIT ?",
        (now_us, limit),
    ).fetchall()
    out = []
    for seq, cb_id, filing_id, url, body, attempts, created in found:
        token = conn.execute(
            "UPDATE callbacks SET state = 'in_flight', lease_owner = ?, "
            "lease_token = lease_token + 1, available_at = ?, updated_at = ? WHERE seq = ? "
            "RETURNING lease_token",
            (owner, until, now_us, seq),
        ).fetchone()[0]
        out.append(
            base.CallbackClaim(
                id=cb_id,
                filing_id=filing_id,
                url=url,
                body=body,
                attempts=attempts,
                token=token,
                created_at=rows.dt(created),
            )
        )
    return out


def finish_callback(
    conn: sqlite3.Connection,
    claim: base.CallbackClaim,
    now: datetime,
    state: str,
    at: datetime | None,
    error: str | None,
) -> bool:
    now_us = rows.us(now)
    row = conn.execute(
        "UPDATE callbacks SET state = ?, attempts = attempts + 1, available_at = ?, "
        "last_error = ?, lease_owner = NULL, updated_at = ?, "
        "delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END "
        "WHERE id = ? AND lease_token = ? AND state = 'in_flight' RETURNING attempts, event, url",
        (
            state,
            rows.us(at) if at is not None else now_us,
            error,
            now_us,
            state,
            now_us,
            claim.id,
            claim.token,
        ),
    ).fetchone()
    if row is None:
        return False
    if state in ("delivered", "dead"):
        sqlite_audit.Audit(conn, now).add(
            f"callback.{state}",
            actor=base.SYSTEM,
            filing_id=claim.filing_id,
            details={"callback_id": claim.id, "event": row[1], "attempts": row[0], "error": error},
        )
    return True


def release_callbacks(conn: sqlite3.Connection, owner: str, now: datetime) -> int:
    now_us = rows.us(now)
    return conn.execute(
        "UPDATE callbacks SET state = CASE WHEN attempts = 0 THEN 'pending' ELSE 'waiting_retry' "
        "END, lease_owner = NULL, lease_token = lease_token + 1, available_at = ?, updated_at = ? "
        "WHERE lease_owner = ? AND state = 'in_flight'",
        (now_us, now_us, owner),
    ).rowcount


def next_callback_due(conn: sqlite3.Connection) -> int | None:
    row = conn.execute(
        f"SELECT MIN(available_at) FROM callbacks WHERE state IN {_CB_OPEN_SQL}"
    ).fetchone()
    return None if row is None else row[0]


def list_callbacks(
    conn: sqlite3.Connection, filing_id: str | None, state: str | None, limit: int
) -> list[models.CallbackView]:
    where, params = [], []
    if filing_id is not None:
        where.append("filing_id = ?")
        params.append(filing_id)
    if state is not None:
        where.append("state = ?")
        params.append(state)
    sql = (
        "SELECT id, filing_id, url, event, state, attempts, available_at, last_error, "
        "created_at, delivered_at FROM callbacks"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY seq DESC LIMIT ?"
    return [
        models.CallbackView(
            id=r[0],
            filing_id=r[1],
            url=r[2],
            event=r[3],
            state=r[4],
            attempts=r[5],
            next_attempt_at=rows.dt(r[6]) if r[4] in ("pending", "waiting_retry") else None,
            last_error=r[7],
            created_at=rows.dt(r[8]),
            delivered_at=rows.dt_or_none(r[9]),
        )
        for r in conn.execute(sql, [*params, limit])
    ]
