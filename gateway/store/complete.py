"""A send recorded, written once for both backends: ``complete`` of concurrent callers
shares one transaction (``coalesce``) and one statement (PostgreSQL one UPDATE over a jsonb
array of rows, SQLite one per row), one status refresh and one audit flush for the lot; a send
whose lease was lost meanwhile is still recorded (``late_sent``).

With several PostgreSQL processes, a **late send** locks its key, then its row, and decides
on the state it reads under that lock; the sent UPDATE is fenced by the lease token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway import models, values
from gateway.store import rows
from gateway.store.sansio import Body, Cx, q
from gateway.store.status import LATE_SENT_MOVES, lock_keys, reblock, refresh_statuses
from gateway.store.trail import Trail
from gateway.values import Claim


@dataclass(frozen=True, slots=True)
class Completion:
    """One ``complete`` call: the claim it ends and what the dispatcher recorded."""

    claim: Claim
    now: datetime
    receipt: dict[str, Any]
    ack_due_at: datetime | None
    hold_until_ack: bool


def complete_many(cx: Cx, batch: list[Completion]) -> Body[list[bool]]:
    """``delivered`` for each claim still holding its lease (fenced by its token), with the
    ack deadline and hold set in the same UPDATE; one statement for the whole batch.

    Returns, per completion, whether it was recorded (False: the lease was lost; the
    send is recorded all the same, by ``late_sent``). The audit rows follow the batch's
    order, each with its own caller's time, the late ones last.
    """
    # one lease twice in one batch (never from one dispatcher): the first call wins and
    # the second is a late send, as one transaction later. The same delivery under an
    # older token (a stale claimant) is another entry: the fence lets only the current
    # token through
    first: dict[tuple[str, int], int] = {}
    for i, c in enumerate(batch):
        first.setdefault((c.claim.delivery_id, c.claim.token), i)
    unique = [batch[i] for i in sorted(first.values())]
    sent = [
        (
            c.claim.delivery_id,
            c.claim.token,
            rows.us(c.now),
            rows.dump_receipt(c.receipt, c.claim.filing.id, c.claim.delivery_id),
            rows.us_or_none(c.ack_due_at),
            c.hold_until_ack,
        )
        for c in unique
    ]
    found = yield q("table_each", "complete_sent", sent)
    done = {(r[0], r[1]): r[2:] for r in found}
    trail = Trail(batch[0].now, cx.redactor)
    stamps: dict[int, int] = {}
    for c in unique:
        row = done.get((c.claim.delivery_id, c.claim.token))
        if row is None:
            continue
        filing_seq, adapter, attempts = row
        details: dict[str, Any] = {"adapter": adapter, "attempts": attempts, "receipt": c.receipt}
        if c.ack_due_at is not None:
            details["ack_due_at"] = rows.iso(c.ack_due_at)
        if c.hold_until_ack:
            details["hold_until_ack"] = True
        _sent(trail, c, "delivery.sent", details)
        stamps[filing_seq] = max(stamps.get(filing_seq, 0), rows.us(c.now))
    keys = [(c.claim.delivery_id, c.claim.token) for c in batch]
    heard = [k in done and first[k] == i for i, k in enumerate(keys)]
    late = [c for c, ok in zip(batch, heard, strict=True) if not ok]
    if late:  # the lease was lost meanwhile: the send still happened
        yield lock_keys(c.claim.filing.ordering_key for c in late)
        for c in late:
            for fs in (yield from late_sent(cx, trail, c)):
                stamps[fs] = max(stamps.get(fs, 0), rows.us(c.now))
    yield from refresh_statuses(cx, stamps)
    yield from trail.flush()
    return heard


def _sent(trail: Trail, c: Completion, event: str, details: dict[str, Any]) -> None:
    """The audit row of a send recorded (at its caller's time)."""
    trail.add(
        event,
        actor=values.SYSTEM,
        filing_id=c.claim.filing.id,
        delivery_id=c.claim.delivery_id,
        details=details,
        now=c.now,
    )


def late_sent(cx: Cx, trail: Trail, c: Completion) -> Body[set[int]]:
    """Record a send whose lease was lost before it could be recorded (a stalled process,
    a reclaim): the receiver has the message, so a not-yet-sent delivery becomes
    ``delivered`` with its receipt (``lifecycle``: ``sent`` is legal from every state);
    an already sent one gets a history row ``delivery.sent_again``. The filing seqs
    touched.

    **Another claim's send may still be in progress** (its lease is live: a reclaim took
    the delivery and is sending it now). Its lease is kept on the row, token, owner and
    end, whatever the state (``status.sending``): operators' actions are refused as for
    ``in_flight`` until that send reports (``send_over``, or its own late record) or its
    lease runs out unrenewed, and a resend the ack asks for waits for it. A lease that
    ran out is fenced off. The send of the lease kept, reported late itself, ends it.

    The caller holds the delivery's ordering-key lock (its successors may be unblocked);
    the row is then locked too, so the state decided on is the one changed.
    """
    row = yield q("one", "late_sent_row", c.claim.delivery_id)
    if row is None:
        return set()
    seq, filing_seq, adapter, ordering_key, state, attempts, owner, token, until = row
    now_us = rows.us(c.now)
    mine = token == c.claim.token
    details: dict[str, Any] = {
        "adapter": adapter,
        "receipt": c.receipt,
        "late": True,
        "state_before": state,
        "attempt": c.claim.attempts + 1,
    }
    if models.DeliveryState(state) not in LATE_SENT_MOVES and state != "in_flight":
        _sent(trail, c, "delivery.sent_again", details)
        if owner is not None and mine:  # the lease kept past a late record: its send ended
            yield q("run", "send_over", c.claim.delivery_id, token)
        return set()
    other_sending = owner is not None and not mine and until > now_us
    yield q(
        "run",
        "late_sent",
        rows.dump_receipt(c.receipt, c.claim.filing.id, c.claim.delivery_id),
        now_us,
        rows.us_or_none(c.ack_due_at),
        c.hold_until_ack,
        seq,
        other_sending,
    )
    _sent(trail, c, "delivery.sent", {**details, "attempts": attempts + 1})
    touched = {filing_seq}
    if state in ("dead", "blocked", "cancelled"):  # its successors may go on now
        sub = Trail(c.now, cx.redactor)
        touched |= yield from reblock(cx, sub, values.SYSTEM, adapter, ordering_key, now_us)
        trail.extend(sub)
    return touched
