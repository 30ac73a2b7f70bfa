"""What is left of PostgreSQL's status callbacks (``callbacks`` has the outbox for both
backends): ``enqueue_callback``, which runs inside whatever transaction changed a filing's
status (from ``pg_ops.refresh_status``), so an event is queued exactly when the change
commits. It moves to ``status`` with the status refresh.
"""

from __future__ import annotations

import json

import asyncpg

from gateway import ids
from gateway.store import logic

Conn = asyncpg.Connection

#: filing statuses a callback is sent for
CALLBACK_STATUSES = frozenset({"delivered", "acknowledged", "rejected", "dead", "cancelled"})

_FILING = "SELECT id, filing_type, environment, reference, callback_url FROM filings WHERE seq = $1"
_DELIVERIES = "SELECT id, adapter, state, ack FROM deliveries WHERE filing_seq = $1 ORDER BY seq"
_INSERT = """
INSERT INTO callbacks (id, filing_id, url, event, body, state, available_at, created_at,
    updated_at)
VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6, $6)
"""


async def enqueue_callback(
    conn: Conn, filing_seq: int, previous: str, status: str, now_us: int
) -> None:
    """Queue a status event for the filing's callback_url, in the caller's transaction."""
    if status not in CALLBACK_STATUSES:
        return
    f = await conn.fetchrow(_FILING, filing_seq)
    event, body = logic.callback_event(
        f, await conn.fetch(_DELIVERIES, filing_seq), previous, status, now_us
    )
    await conn.execute(
        _INSERT,
        ids.new_id("evt"),
        f[0],
        f[4],
        event,
        json.dumps(body, separators=(",", ":")),
        now_us,
    )
