"""What is left of the SQLite life-cycle bodies (accept, claim, settling and release are
in ``accept``/``dispatch``, written once): the status refresh and successor blocking that
``sqlite_acks``, ``sqlite_actions`` and ``sqlite_outages`` still call until they fold
(then this module goes). They run on the writer thread of ``sqlite.py``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

from gateway import models
from gateway.store import (
    base,
    logic,
    sqlite_audit,
    sqlite_callbacks,
)


def refresh_status(conn: sqlite3.Connection, filing_seq: int, now_us: int) -> None:
    refresh_statuses(conn, [filing_seq], now_us)


def refresh_statuses(
    conn: sqlite3.Connection, filing_seqs: Sequence[int], now_us: int | Mapping[int, int]
) -> None:
    """Derive each filing's status from its deliveries (two SELECTs for the whole set);
    a filing with a callback_url whose status changed gets its callback queued.
    ``now_us`` is the time of the change, or each filing's own (a batch of completions)."""
    seqs = list(dict.fromkeys(filing_seqs))
    if not seqs:
        return
    marks = ",".join("?" * len(seqs))
    states: dict[int, list[models.DeliveryState]] = {s: [] for s in seqs}
    for fs, state in conn.execute(
        f"SELECT filing_seq, state FROM deliveries WHERE filing_seq IN ({marks})", seqs
    ):
        states[fs].append(models.DeliveryState(state))
    before = {
        r[0]: (r[1], r[2])
        for r in conn.execute(
            f"SELECT seq, status, callback_url FROM filings WHERE seq IN ({marks})", seqs
        )
    }
    updates = []
    for fs in seqs:
        status = models.derive_status(states[fs]).value
        at = now_us if isinstance(now_us, int) else now_us[fs]
        updates.append((status, at, fs))
        old = before.get(fs)
        if old is not None and old[1] and old[0] != status:
            sqlite_callbacks.enqueue_callback(conn, fs, old[0], status, at)
    conn.executemany("UPDATE filings SET status = ?, updated_at = ? WHERE seq = ?", updates)


def block_successors(
    conn: sqlite3.Connection,
    trail: sqlite_audit.Audit,
    adapter: str,
    ordering_key: str,
    after_seq: int,
    now_us: int,
) -> set[int]:
    changed = conn.execute(
        "UPDATE deliveries SET state = 'blocked', updated_at = ? WHERE adapter = ? "
        f"AND ordering_key = ? AND seq > ? AND state IN {logic.BLOCK_FROM_SQL} "
        "RETURNING id, filing_id, filing_seq",
        (now_us, adapter, ordering_key, after_seq),
    ).fetchall()
    for delivery_id, filing_id, _ in changed:
        trail.add(
            "delivery.blocked",
            actor=base.SYSTEM,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={"adapter": adapter, "ordering_key": ordering_key},
        )
    return {r[2] for r in changed}
