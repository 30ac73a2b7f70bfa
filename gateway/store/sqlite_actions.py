"""What ``sqlite_acks`` still borrows from the old SQLite operator actions: recomputing
``blocked`` along an ordering key, a filing's seq, the in-flight refusal. The actions
themselves are written once in ``store/actions.py`` (on ``store/status.py``'s bodies);
this module goes when ``sqlite_acks`` is folded.
"""

from __future__ import annotations

import sqlite3

from gateway import errors
from gateway.rules import lifecycle
from gateway.store import logic, rows, sqlite_audit, sqlite_schema
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
