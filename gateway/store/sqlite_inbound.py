"""Rejected inbound events on SQLite (schema v4): kept once per (source, event id), audited,
listed newest first.
"""

from __future__ import annotations

import json
import sqlite3

from gateway import models
from gateway.store import logic, rows, sqlite_audit
from gateway.store.base import Actor

_R_COLS = "seq, id, source, origin, event_id, reason, details, body, content_type, received_at"


def reject_event(conn: sqlite3.Connection, event: models.RejectedEvent) -> bool:
    cur = conn.execute(
        f"INSERT OR IGNORE INTO rejected_events ({_R_COLS.removeprefix('seq, ')}) "
        "VALUES (?,?,?,?,?,?,?,?,?)",
        (
            event.id,
            event.source,
            event.origin,
            event.event_id,
            event.reason,
            json.dumps(event.details, default=str),
            event.body,
            event.content_type,
            rows.us(event.received_at),
        ),
    )
    if cur.rowcount == 0:
        return False
    sqlite_audit.Audit(conn, event.received_at).add(
        "event.rejected",
        actor=Actor(name=f"source:{event.source}"),
        details=logic.rejected_details(event),
    )
    return True


def list_rejected(
    conn: sqlite3.Connection, source: str | None, limit: int, cursor: str | None
) -> tuple[list[models.RejectedEvent], str | None]:
    where, params = [], []
    if cursor is not None:
        where.append("seq < ?")
        params.append(rows.decode_cursor(cursor))
    if source is not None:
        where.append("source = ?")
        params.append(source)
    sql = f"SELECT {_R_COLS} FROM rejected_events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    found = conn.execute(sql + " ORDER BY seq DESC LIMIT ?", [*params, limit + 1]).fetchall()
    more = len(found) > limit
    found = found[:limit]
    items = [rows.rejected_event(r) for r in found]
    return items, (rows.encode_cursor(found[-1][0]) if more and found else None)
