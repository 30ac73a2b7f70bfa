"""PostgreSQL delivery completion with an ack expectation (``complete_many``, ``late_sent``,
``Completion``), the same semantics as ``sqlite_acks``, kept here until it is folded into
the one store; the ack bodies are in ``store/acks.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from gateway import models
from gateway.audit import redact
from gateway.store import base, logic, pg_audit, pg_ops, rows

Conn = asyncpg.Connection

#: many completions at once, each fenced by its own lease token
_COMPLETE_MANY = """
UPDATE deliveries d SET state = 'delivered', attempts = d.attempts + 1, available_at = v.at,
    last_error = NULL, receipt = v.receipt, delivered_at = v.at, lease_owner = NULL,
    updated_at = v.at, ack_due_at = v.ack_due_at, ack_overdue = FALSE,
    hold_until_ack = v.hold, ack = NULL
FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::boolean[])
    AS v(id, token, at, receipt, ack_due_at, hold)
WHERE d.id = v.id AND d.lease_token = v.token AND d.state = 'in_flight'
RETURNING d.id, v.token, d.filing_seq, d.adapter, d.attempts
"""
# --- delivery completion with an ack expectation ----------------------------------------


@dataclass(frozen=True, slots=True)
class Completion:
    """One ``complete`` call: the claim it ends and what the dispatcher recorded."""

    claim: base.Claim
    now: datetime
    receipt: dict[str, Any]
    ack_due_at: datetime | None
    hold_until_ack: bool


async def complete_many(
    conn: Conn, batch: list[Completion], redactor: redact.Redactor
) -> list[bool]:
    """``delivered`` for each claim still holding its lease (fenced by its token), with the
    ack deadline and hold set in the same UPDATE; one statement for the whole batch.

    Returns, per completion, whether it was recorded (False: the lease was lost). The
    audit rows follow the batch's order, each with its own caller's time.
    """
    # one lease twice in one batch (never from one dispatcher): the first call wins, as
    # it would have one transaction earlier. The same delivery under an older token (a
    # stale claimant) is another entry: the fence lets only the current token through
    first: dict[tuple[str, int], int] = {}
    for i, c in enumerate(batch):
        first.setdefault((c.claim.delivery_id, c.claim.token), i)
    unique = [batch[i] for i in sorted(first.values())]
    found = await conn.fetch(
        _COMPLETE_MANY,
        [c.claim.delivery_id for c in unique],
        [c.claim.token for c in unique],
        [rows.us(c.now) for c in unique],
        [json.dumps(c.receipt) for c in unique],
        [rows.us_or_none(c.ack_due_at) for c in unique],
        [c.hold_until_ack for c in unique],
    )
    done = {(r[0], r[1]): r[2:] for r in found}
    trail = pg_audit.Trail(batch[0].now, redactor)
    stamps: dict[int, int] = {}
    late: list[Completion] = []
    for c in unique:
        row = done.get((c.claim.delivery_id, c.claim.token))
        if row is None:
            late.append(c)
            continue
        filing_seq, adapter, attempts = row
        details: dict[str, Any] = {"adapter": adapter, "attempts": attempts, "receipt": c.receipt}
        if c.ack_due_at is not None:
            details["ack_due_at"] = rows.iso(c.ack_due_at)
        if c.hold_until_ack:
            details["hold_until_ack"] = True
        trail.add(
            "delivery.sent",
            actor=base.SYSTEM,
            filing_id=c.claim.filing.id,
            delivery_id=c.claim.delivery_id,
            details=details,
            now=c.now,
        )
        stamps[filing_seq] = max(stamps.get(filing_seq, 0), rows.us(c.now))
    for c in late:  # the lease was lost meanwhile: the send still happened
        for fs in await late_sent(conn, trail, c):
            stamps[fs] = max(stamps.get(fs, 0), rows.us(c.now))
    await pg_ops.refresh_statuses(conn, stamps)
    await trail.flush(conn)
    keys = [(c.claim.delivery_id, c.claim.token) for c in batch]
    return [k in done and first[k] == i for i, k in enumerate(keys)]


_LATE_SENT = """
UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, receipt = $1,
    delivered_at = $2, available_at = $2, last_error = NULL, lease_owner = NULL,
    lease_token = lease_token + 1, ack_due_at = $3, ack_overdue = FALSE, hold_until_ack = $4,
    ack = NULL, updated_at = $2
WHERE seq = $5
"""


async def late_sent(conn: Conn, trail: pg_audit.Trail, c: Completion) -> set[int]:
    """Record a send whose lease was lost before it could be recorded, as
    ``sqlite_acks.late_sent`` does: a not-yet-sent delivery becomes ``delivered`` (its
    receipt kept, the current lease fenced off), a sent one gets ``delivery.sent_again``.
    The filing seqs touched."""
    row = await conn.fetchrow(
        "SELECT seq, filing_seq, adapter, ordering_key, state, attempts FROM deliveries "
        "WHERE id = $1",
        c.claim.delivery_id,
    )
    if row is None:
        return set()
    seq, filing_seq, adapter, ordering_key, state, attempts = row
    await pg_ops.lock_keys(conn, {ordering_key})
    row = await conn.fetchrow(
        "SELECT state, attempts FROM deliveries WHERE seq = $1 FOR UPDATE", seq
    )
    state, attempts = row
    details: dict[str, Any] = {
        "adapter": adapter,
        "receipt": c.receipt,
        "late": True,
        "state_before": state,
        "attempt": c.claim.attempts + 1,
    }
    if models.DeliveryState(state) not in logic.LATE_SENT_MOVES and state != "in_flight":
        trail.add(
            "delivery.sent_again",
            actor=base.SYSTEM,
            filing_id=c.claim.filing.id,
            delivery_id=c.claim.delivery_id,
            details=details,
            now=c.now,
        )
        return set()
    now_us = rows.us(c.now)
    await conn.execute(
        _LATE_SENT,
        json.dumps(c.receipt),
        now_us,
        rows.us_or_none(c.ack_due_at),
        c.hold_until_ack,
        seq,
    )
    trail.add(
        "delivery.sent",
        actor=base.SYSTEM,
        filing_id=c.claim.filing.id,
        delivery_id=c.claim.delivery_id,
        details={**details, "attempts": attempts + 1},
        now=c.now,
    )
    touched = {filing_seq}
    if state in ("dead", "blocked", "cancelled"):  # its successors may go on now
        touched |= await pg_ops.reblock(conn, trail, base.SYSTEM, adapter, ordering_key, now_us)
    return touched
