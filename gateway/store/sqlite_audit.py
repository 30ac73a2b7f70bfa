"""The audit trail on SQLite: ``Audit`` appends hash-chained rows inside the transaction
of the change they record; reading the trail back and pruning its oldest rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway.audit import chain as audit
from gateway.audit import redact
from gateway.store import base, rows, sqlite_schema
from gateway.store.base import Actor


def audit_row(r: Sequence[Any]) -> audit.AuditRow:
    return audit.AuditRow(
        seq=r[0],
        at=r[1],
        actor=r[2],
        filing_id=r[3],
        delivery_id=r[4],
        event=r[5],
        details=json.loads(r[6]),
        prev_hash=r[7],
        hash=r[8],
    )


def prune(
    conn: sqlite3.Connection, before: datetime, actor: Actor, now: datetime
) -> base.PruneResult:
    """Delete the oldest rows (all older than ``before``) and append the anchor row.

    The append-only trigger lets a DELETE through only while ``audit_prune_guard``
    holds its one row, which exists only inside this transaction.
    """
    first = conn.execute("SELECT MIN(seq) FROM audit").fetchone()[0]
    younger = conn.execute("SELECT MIN(seq) FROM audit WHERE at >= ?", (rows.iso(before),))
    stop = younger.fetchone()[0]
    trail = Audit(conn, now)
    cutoff = trail.seq if stop is None else stop - 1
    if first is None or cutoff < first:
        return base.PruneResult(removed=0, first_seq=None, last_seq=None, anchor_seq=None)
    continues_from = conn.execute("SELECT hash FROM audit WHERE seq = ?", (cutoff,)).fetchone()[0]
    conn.execute("INSERT INTO audit_prune_guard (id) VALUES (1)")
    removed = conn.execute("DELETE FROM audit WHERE seq <= ?", (cutoff,)).rowcount
    conn.execute("DELETE FROM audit_prune_guard")
    trail.add(
        audit.PRUNED,
        actor=actor,
        details={
            "before": rows.iso(before),
            "removed_from_seq": first,
            "removed_to_seq": cutoff,
            "removed_rows": removed,
            "continues_from": continues_from,
        },
    )
    return base.PruneResult(removed=removed, first_seq=first, last_seq=cutoff, anchor_seq=trail.seq)


class Audit:
    """Appends hash-chained audit rows inside the current transaction."""

    def __init__(self, conn: sqlite3.Connection, now: datetime) -> None:
        self.conn = conn
        self.redactor: redact.Redactor = getattr(conn, "redactor", None) or redact.Redactor()
        self.at = rows.iso(now)
        last = conn.execute(sqlite_schema.SQL_LAST_AUDIT).fetchone()
        self.seq, self.prev = (last[0], last[1]) if last else (0, audit.GENESIS)
        self.pending: list[tuple[Any, ...]] = []

    def add(
        self,
        event: str,
        *,
        actor: Actor,
        filing_id: str | None = None,
        delivery_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        details = dict(details or {})
        if actor.request_id:
            details.setdefault("request_id", actor.request_id)
        text = audit.canonical(self.redactor.value(details))
        self.seq += 1
        h = audit.row_hash_of_canonical(
            self.prev,
            seq=self.seq,
            at=self.at,
            actor=actor.name,
            filing_id=filing_id,
            delivery_id=delivery_id,
            event=event,
            details_json=text,
        )
        self.conn.execute(
            sqlite_schema.SQL_INSERT_AUDIT,
            (self.seq, self.at, actor.name, filing_id, delivery_id, event, text, self.prev, h),
        )
        self.prev = h


def append(
    conn: sqlite3.Connection, event: str, actor: Actor, now: datetime, details: dict[str, Any]
) -> None:
    Audit(conn, now).add(event, actor=actor, details=details)


def page(conn: sqlite3.Connection, after_seq: int) -> list[Any]:
    """Up to 1,000 raw rows after ``after_seq``, in order."""
    return conn.execute(
        f"SELECT {sqlite_schema.SQL_AUDIT_COLS} FROM audit WHERE seq > ? ORDER BY seq LIMIT 1000",
        (after_seq,),
    ).fetchall()


def history(conn: sqlite3.Connection, filing_id: str) -> list[audit.AuditRow]:
    return [
        audit_row(r)
        for r in conn.execute(
            f"SELECT {sqlite_schema.SQL_AUDIT_COLS} FROM audit WHERE filing_id = ? ORDER BY seq",
            (filing_id,),
        )
    ]
