"""SQLite delivery completion with an ack expectation (``complete_many``, ``late_sent``,
``Completion``), kept here until it is folded into the one store; the ack bodies are in
``store/acks.py``. They run on the writer thread of ``sqlite.py``, inside the transaction
its ``_write`` opened, and reuse ``sqlite_audit``, ``sqlite_ops`` and ``sqlite_actions``.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from gateway import models
from gateway.store import base, logic, rows, sqlite_actions, sqlite_audit, sqlite_ops

# --- delivery completion with an ack expectation ----------------------------------------


#: one completion: the claim, when, the receipt, ack due at, hold the key until acked
Completion = tuple[base.Claim, datetime, dict[str, Any], datetime | None, bool]


def complete_many(conn: sqlite3.Connection, items: list[Completion]) -> list[bool]:
    """Settle sent deliveries, each fenced by its own lease token, in the order given;
    one audit head read and one status refresh for the lot. True where the fence held;
    where it did not, the send is recorded all the same (``late_sent``)."""
    trail = None
    stamps: dict[int, int] = {}
    out: list[bool] = []
    for claim, now, receipt, ack_due_at, hold_until_ack in items:
        details: dict[str, Any] = {"receipt": receipt}
        if ack_due_at is not None:
            details["ack_due_at"] = rows.iso(ack_due_at)
        if hold_until_ack:
            details["hold_until_ack"] = True
        if trail is None:
            trail = sqlite_audit.Audit(conn, now)
        touched = sqlite_ops.settle(
            conn,
            trail,
            claim,
            now,
            models.DeliveryState.DELIVERED,
            now,
            None,
            receipt,
            True,
            "delivery.sent",
            details,
            ack=(rows.us_or_none(ack_due_at), hold_until_ack),
        )
        out.append(touched is not None)
        if touched is None:  # the lease was lost meanwhile: the send still happened
            touched = late_sent(conn, trail, claim, now, receipt, ack_due_at, hold_until_ack)
        for fs in touched or ():
            stamps[fs] = rows.us(now)
    sqlite_ops.refresh_statuses(conn, list(stamps), stamps)
    return out


def late_sent(
    conn: sqlite3.Connection,
    trail: sqlite_audit.Audit,
    claim: base.Claim,
    now: datetime,
    receipt: dict[str, Any],
    ack_due_at: datetime | None,
    hold_until_ack: bool,
) -> set[int] | None:
    """Record a send whose lease was lost before it could be recorded (a stalled process,
    a reclaim): the receiver has the message, so a not-yet-sent delivery becomes
    ``delivered`` with its receipt (``lifecycle``: ``sent`` is legal from every state),
    whoever holds the lease now is fenced off; an already sent one gets a history row
    ``delivery.sent_again``. The filing seqs touched, or None if no such delivery."""
    row = conn.execute(
        "SELECT seq, filing_seq, adapter, ordering_key, state, attempts FROM deliveries "
        "WHERE id = ?",
        (claim.delivery_id,),
    ).fetchone()
    if row is None:
        return None
    seq, filing_seq, adapter, ordering_key, state, attempts = row
    now_us = rows.us(now)
    trail.at = rows.iso(now)
    details: dict[str, Any] = {
        "adapter": adapter,
        "receipt": receipt,
        "late": True,
        "state_before": state,
        "attempt": claim.attempts + 1,
    }
    if models.DeliveryState(state) not in logic.LATE_SENT_MOVES and state != "in_flight":
        trail.add(
            "delivery.sent_again",
            actor=base.SYSTEM,
            filing_id=claim.filing.id,
            delivery_id=claim.delivery_id,
            details=details,
        )
        return set()
    conn.execute(
        "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, receipt = ?, "
        "delivered_at = ?, available_at = ?, last_error = NULL, lease_owner = NULL, "
        "lease_token = lease_token + 1, ack_due_at = ?, ack_overdue = 0, hold_until_ack = ?, "
        "ack = NULL, updated_at = ? WHERE seq = ?",
        (
            json.dumps(receipt),
            now_us,
            now_us,
            rows.us_or_none(ack_due_at),
            int(hold_until_ack),
            now_us,
            seq,
        ),
    )
    trail.add(
        "delivery.sent",
        actor=base.SYSTEM,
        filing_id=claim.filing.id,
        delivery_id=claim.delivery_id,
        details={**details, "attempts": attempts + 1},
    )
    touched = {filing_seq}
    if state in ("dead", "blocked", "cancelled"):  # its successors may go on now
        touched |= sqlite_actions.reblock(conn, trail, base.SYSTEM, adapter, ordering_key, now_us)
    return touched
