"""The audit chain inside a store transaction, written once for both backends.

A body collects its audit rows in a ``Trail`` (``gateway.audit.events.Rows``: redacted,
chained there) and appends them at its end with ``yield from trail.flush()``: take the
chain lock (PostgreSQL: an advisory lock held until commit, so rows of all processes extend
one chain; SQLite: its one writer), read the head, hash and insert every row in one
statement. The lock is held briefly because the lock, the head read and the insert are the
transaction's last statements.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway import values
from gateway.audit import chain as audit
from gateway.audit import events
from gateway.store import rows
from gateway.store.sansio import Body, Cx, Lock, q, sql
from gateway.values import Actor

LOCK_AUDIT = (0x6564_6777, 1)  # 'edgw', 1

#: the chain's head before the first row
EMPTY = (0, audit.GENESIS)

COLS = "seq, at, actor, filing_id, delivery_id, event, details, prev_hash, hash"


class Trail(events.Rows):
    """Audit rows of one transaction; ``flush`` chains them onto the shared head."""

    def flush(self, *, head: tuple[int, str] | None = None, notify: str | None = None) -> Body[int]:
        """Append the collected rows; returns the new head seq (0: nothing appended).

        ``head``: the chain head read under the lock already held (``prune``).
        ``notify``: announce new work with this payload when there are rows, in the same
        statement as the chain lock (one round trip fewer on PostgreSQL).
        """
        if not self.items:
            return 0
        out = self.chain(head or (yield from lock_head(notify)))
        yield q("table", "audit_insert", out)
        self.items = []
        return int(out[-1][0])


def lock_head(notify: str | None = None) -> Body[tuple[int, str]]:
    """Take the chain lock (until commit), then read the head it protects: (seq, hash).

    The head is read in a statement of its own, after the lock is held: its snapshot
    then includes every chain row committed before. ``notify``: see ``Lock``.
    """
    yield Lock(LOCK_AUDIT, notify)
    head = yield sql("one", "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
    return (int(head[0]), str(head[1])) if head else EMPTY


def record(
    cx: Cx,
    now: datetime,
    actor: Actor,
    event: str,
    details: Any,
    *,
    filing_id: str | None = None,
    notify: str | None = None,
) -> Body[int]:
    """A body's one audit row, appended at once (``Trail``, ``add``, ``flush``)."""
    trail = Trail(now, cx.redactor)
    trail.add(event, actor=actor, filing_id=filing_id, details=details)
    return (yield from trail.flush(notify=notify))


def append_audit(
    cx: Cx, event: str, *, actor: Actor, now: datetime, details: dict[str, Any]
) -> Body[int]:
    """One audit row in a transaction of its own (an event with no other change)."""
    return (yield from record(cx, now, actor, event, details))


def audit_row(r: Sequence[Any]) -> audit.AuditRow:
    return rows.build(audit.AuditRow, COLS, r, details=json.loads)


def page(cx: Cx, after_seq: int) -> Body[list[Any]]:
    """Up to 1,000 raw rows after ``after_seq``, in order."""
    found = yield sql(
        "all", f"SELECT {COLS} FROM audit WHERE seq > $1 ORDER BY seq LIMIT 1000", after_seq
    )
    return list(found)


def history(cx: Cx, filing_id: str) -> Body[list[audit.AuditRow]]:
    found = yield sql(
        "all", f"SELECT {COLS} FROM audit WHERE filing_id = $1 ORDER BY seq", filing_id
    )
    return [audit_row(r) for r in found]


def prune(cx: Cx, *, before: datetime, actor: Actor, now: datetime) -> Body[values.PruneResult]:
    """Delete the oldest rows (all older than ``before``) and append the anchor row.

    The cutoff: the rows before the lowest seq written at or after ``before`` (all rows
    when there is none). The chain lock is taken first, so no process appends between
    reading the head and writing the anchor. The delete trigger lets the DELETE through
    only while ``audit_prune_guard`` holds its row, inserted and removed here, in this
    transaction, so no other transaction ever sees it.
    """
    head = yield from lock_head()
    first = yield sql("val", "SELECT MIN(seq) FROM audit")
    stop = yield q("val", "audit_first_since", rows.iso(before))
    cutoff = head[0] if stop is None else stop - 1
    if first is None or cutoff < first:
        return values.PruneResult(removed=0, first_seq=None, last_seq=None, anchor_seq=None)
    continues_from = yield q("val", "archive_continues_from", cutoff)  # cutoff: maybe archived
    yield sql("run", "INSERT INTO audit_prune_guard (id) VALUES (1)")
    removed = yield sql("run", "DELETE FROM audit WHERE seq <= $1", cutoff)
    yield sql("run", "DELETE FROM audit_prune_guard")
    trail = Trail(now, cx.redactor)
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
    anchor = yield from trail.flush(head=head)
    return values.PruneResult(removed=removed, first_seq=first, last_seq=cutoff, anchor_seq=anchor)


def head(cx: Cx) -> Body[tuple[int, str] | None]:
    row = yield sql("one", "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
    return None if row is None else (int(row[0]), str(row[1]))
