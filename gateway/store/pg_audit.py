"""The PostgreSQL audit chain: appending rows under the chain lock, and pruning.

Every transaction that writes audit rows collects them in a ``Trail`` and appends
them at its end with ``flush``, under one advisory lock held until commit, so rows
from all processes extend one hash chain and the lock is held only briefly: the lock,
the head read and one INSERT of all the transaction's rows are its last statements.
"""

from __future__ import annotations

import contextvars
import json
from datetime import datetime
from typing import Any

import asyncpg

from gateway.audit import chain as audit
from gateway.audit import redact
from gateway.store import base, pg_sql, rows
from gateway.store.base import Actor

Conn = asyncpg.Connection

#: the chain's head before the first row
_EMPTY = (0, audit.GENESIS)


async def lock_head(conn: Conn, *, notify: str | None = None) -> tuple[int, str]:
    """Take the chain lock (until commit) and read the head it protects: (seq, hash).

    ``notify``: also announce new work with this payload (sent at commit), in the same
    statement as the lock, which saves a round trip.
    """
    # The head is read in a statement of its own, after the lock is held: its snapshot
    # then includes every chain row committed before (one statement's snapshot would
    # be taken before the lock wait).
    if notify is None:
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *pg_sql.LOCK_AUDIT)
    else:
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1, $2), pg_notify($3, $4)",
            *pg_sql.LOCK_AUDIT,
            pg_sql.CHANNEL,
            notify,
        )
    head = await conn.fetchrow(pg_sql.AUDIT_HEAD)
    return (int(head[0]), str(head[1])) if head else _EMPTY


#: the redactor of the store whose transaction is running (``PostgresStore._write`` sets it),
#: so transaction bodies that do not take one still redact with the configured paths
STORE_REDACTOR: contextvars.ContextVar[redact.Redactor | None] = contextvars.ContextVar(
    "edigw_store_redactor", default=None
)


class Trail:
    """Audit rows of one transaction; ``flush`` chains them onto the shared head.

    Details get the actor's ``request_id`` and then pass through ``redactor`` before
    they are hashed, as on SQLite, so the chain holds only the masked values.
    """

    def __init__(self, now: datetime, redactor: redact.Redactor | None = None) -> None:
        self.at = rows.iso(now)
        self.redactor = redactor or STORE_REDACTOR.get() or redact.Redactor()
        #: (at, event, actor, filing_id, delivery_id, details), in append order
        self.items: list[tuple[str, str, str, str | None, str | None, dict[str, Any]]] = []

    def add(
        self,
        event: str,
        *,
        actor: Actor,
        filing_id: str | None = None,
        delivery_id: str | None = None,
        details: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> None:
        """Collect one row; ``now``: its own time when it differs from the trail's
        (a coalesced transaction of several callers)."""
        details = dict(details or {})
        if actor.request_id:
            details.setdefault("request_id", actor.request_id)
        details = self.redactor.value(details)
        at = self.at if now is None else rows.iso(now)
        self.items.append((at, event, actor.name, filing_id, delivery_id, details))

    def extend(self, other: Trail) -> None:
        """Take over ``other``'s collected rows (already redacted), after this trail's."""
        self.items += other.items
        other.items = []

    async def flush(
        self, conn: Conn, *, head: tuple[int, str] | None = None, notify: str | None = None
    ) -> int:
        """Append the collected rows; returns the new head seq (0: nothing appended).

        ``head``: the chain head read under the lock already held (``prune``, whose
        DELETE can leave the table empty while the chain goes on). ``notify``: announce
        new work with this payload when there are rows (see ``lock_head``).
        """
        if not self.items:
            return 0
        seq, prev = head if head is not None else await lock_head(conn, notify=notify)
        # one column per array: a single INSERT ... unnest, one round trip, one statement
        cols: list[list[Any]] = [[] for _ in range(9)]
        for at, event, actor, filing_id, delivery_id, details in self.items:
            seq += 1
            text = audit.canonical(details)  # serialised once: stored and hashed
            h = audit.row_hash_of_canonical(
                prev,
                seq=seq,
                at=at,
                actor=actor,
                filing_id=filing_id,
                delivery_id=delivery_id,
                event=event,
                details_json=text,
            )
            row = (seq, at, actor, filing_id, delivery_id, event, text, prev, h)
            for col, value in zip(cols, row, strict=True):
                col.append(value)
            prev = h
        await conn.execute(pg_sql.INSERT_AUDIT_ROWS, *cols)
        self.items = []
        return seq


def audit_row(r: Any) -> audit.AuditRow:
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


async def prune(
    conn: Conn, before: datetime, actor: Actor, now: datetime, redactor: redact.Redactor
) -> base.PruneResult:
    """Delete the oldest rows (all older than ``before``) and append the anchor row.

    Same cutoff as SQLite: the rows before the lowest seq written at or after
    ``before`` (all rows when there is none). The chain lock is taken first, so no
    process appends between reading the head and writing the anchor. The delete
    trigger lets the DELETE through only while ``audit_prune_guard`` holds its row,
    inserted and removed here, in this transaction.
    """
    head = await lock_head(conn)
    first = await conn.fetchval("SELECT MIN(seq) FROM audit")
    stop = await conn.fetchval(pg_sql.AUDIT_FIRST_SINCE, rows.iso(before))
    cutoff = head[0] if stop is None else stop - 1
    if first is None or cutoff < first:
        return base.PruneResult(removed=0, first_seq=None, last_seq=None, anchor_seq=None)
    continues_from = await conn.fetchval("SELECT hash FROM audit WHERE seq = $1", cutoff)
    await conn.execute("INSERT INTO audit_prune_guard (id) VALUES (1)")
    status = await conn.execute("DELETE FROM audit WHERE seq <= $1", cutoff)
    await conn.execute("DELETE FROM audit_prune_guard")
    removed = int(status.rsplit(" ", 1)[-1])
    trail = Trail(now, redactor)
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
    anchor = await trail.flush(conn, head=head)
    return base.PruneResult(removed=removed, first_seq=first, last_seq=cutoff, anchor_seq=anchor)
