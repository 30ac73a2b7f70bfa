"""What is left of SQLite's status callbacks (``callbacks`` has the outbox for both
backends): ``enqueue_callback``, which runs inside whatever transaction changed a filing's
status (it is called from ``sqlite_ops.refresh_statuses``), so an event is queued exactly
when the change commits. It moves to ``status`` with the status refresh.
"""

from __future__ import annotations

import json
import sqlite3

from gateway import ids
from gateway.store import logic

#: filing statuses a callback is sent for
CALLBACK_STATUSES = frozenset({"delivered", "acknowledged", "rejected", "dead", "cancelled"})


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
