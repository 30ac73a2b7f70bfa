"""The dispatch life cycle, written once for both backends: claim, renew, the settling of
a claimed delivery (sent, retry, deferred, dead), a send recorded after its lease was
lost (``late_sent``), release, and the next due time. Accept is in ``accept``.

How they stay right with several PostgreSQL processes:

* **claims** lock only the head of each (adapter, ordering_key) group, ``FOR UPDATE SKIP
  LOCKED`` (see ``sql/postgres/dispatch.sql``, ``claim``, for why a successor can never
  be taken while its head is pending or in flight, in any process);
* every settling is **fenced** by the claim's lease token: a claimant whose lease ran out
  and was claimed again changes nothing, and hears so (False);
* a delivery that goes **dead** blocks its key's successors: the ordering-key lock is
  taken first (``status.lock_keys``), as every transaction that blocks or unblocks a key's
  deliveries does;
* a **late send** (the lease was lost, the send happened) locks its key, then its row, and
  decides on the state it reads under that lock;
* **completions** of concurrent callers share one transaction (``coalesce``, in both
  drivers) and one statement: PostgreSQL one UPDATE over column arrays, SQLite one per
  row; one status refresh and one audit flush for the lot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway import models
from gateway.store import logic, rows, values
from gateway.store.sansio import Body, Cx, Driven, q, read, write
from gateway.store.status import (
    block_successors,
    lock_keys,
    reblock,
    refresh_status,
    refresh_statuses,
)
from gateway.store.trail import Trail
from gateway.store.values import Claim

_S = models.DeliveryState


# --- claim ------------------------------------------------------------------------------


def claim(
    cx: Cx,
    owner: str,
    now: datetime,
    lease_s: float,
    limits: dict[str, int],
    probing: frozenset[str] = frozenset(),
) -> Body[list[Claim]]:
    """Take the heads of their ordering keys, earliest due first; a breaker probe
    (``probing``) takes a delivery that never failed a probe first."""
    now_us = rows.us(now)
    lease_until = rows.us(now + timedelta(seconds=lease_s))
    taken: list[Any] = []
    for adapter, limit in limits.items():
        if limit <= 0:
            continue
        name = "claim_probe" if adapter in probing else "claim"
        if cx.dialect == "postgres":  # selects, locks and takes them in one statement
            taken += yield q("all", name, adapter, now_us, limit, owner, lease_until)
        else:  # selects them only (see sql/sqlite/dispatch.sql)
            taken += yield q("all", name, adapter, now_us, limit)
    if not taken:
        return []
    if cx.dialect == "sqlite":
        yield q(
            "run",
            "claim_take",
            owner,
            lease_until,
            now_us,
            [r[7] for r in taken],
        )
    taken.sort(key=lambda r: (r[8], r[7]))  # claim order: due_by (none last), then seq
    trail = Trail(now, cx.redactor)
    claims = []
    for delivery_id, adapter, token, attempts, _, filing_id, was, *rest in taken:
        details: dict[str, Any] = {"adapter": adapter, "attempt": attempts + 1, "owner": owner}
        if was == "in_flight":
            details["reclaimed_expired_lease"] = True
        trail.add(
            "delivery.in_flight",
            actor=values.SYSTEM,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details=details,
        )
        claims.append(
            Claim(
                delivery_id=delivery_id,
                adapter=adapter,
                token=token,
                attempts=attempts,
                filing=rows.filing(rest[3:]),  # the filing's columns follow
                probe_failures=rest[2],
            )
        )
    yield from refresh_status(cx, {r[4] for r in taken}, now_us)
    yield from trail.flush()
    return claims


def renew(cx: Cx, *, owner: str, tokens: dict[str, int], until: datetime) -> Body[int]:
    """Extend the leases ``owner`` still holds (delivery id → token); how many it holds."""
    if not tokens:
        return 0
    end = rows.us(until)
    n: int = yield q("rows", "renew", [(end, d, owner, t) for d, t in tokens.items()])
    return n


# --- settling a claimed delivery ---------------------------------------------------------


def finish(
    cx: Cx,
    claim: Claim,
    now: datetime,
    state: models.DeliveryState,
    available_at: datetime,
    error: str | None,
    spent: bool,
    event: str,
    details: dict[str, Any],
    probe_failed: bool = False,
) -> Body[bool]:
    """Settle a claimed delivery if its lease token still holds (the fence): retry,
    deferred or dead. ``probe_failed`` counts a failed breaker probe."""
    now_us = rows.us(now)
    if state is _S.DEAD:  # blocking successors changes the key's rows
        yield lock_keys([claim.filing.ordering_key])
    row = yield q(
        "one",
        "finish_delivery",
        state.value,
        1 if spent else 0,
        rows.us(available_at),
        error,
        1 if probe_failed else 0,
        now_us,
        claim.delivery_id,
        claim.token,
    )
    if row is None:
        return False
    seq, filing_seq, adapter, ordering_key, attempts = row
    trail = Trail(now, cx.redactor)
    trail.add(
        event,
        actor=values.SYSTEM,
        filing_id=claim.filing.id,
        delivery_id=claim.delivery_id,
        details={"adapter": adapter, "attempts": attempts, **details},
    )
    touched = {filing_seq}
    if state is _S.DEAD:
        touched |= yield from block_successors(cx, trail, adapter, ordering_key, seq, now_us)
    yield from refresh_status(cx, touched, now_us)
    yield from trail.flush()
    return True


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
    found = yield q(
        "each",
        "complete_sent",
        [
            (
                c.claim.delivery_id,
                c.claim.token,
                rows.us(c.now),
                json.dumps(c.receipt),
                rows.us_or_none(c.ack_due_at),
                c.hold_until_ack,
            )
            for c in unique
        ],
    )
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
        trail.add(
            "delivery.sent",
            actor=values.SYSTEM,
            filing_id=c.claim.filing.id,
            delivery_id=c.claim.delivery_id,
            details=details,
            now=c.now,
        )
        stamps[filing_seq] = max(stamps.get(filing_seq, 0), rows.us(c.now))
    heard = [k in done and first[k] == i for i, k in enumerate(_keys(batch))]
    late = [c for c, ok in zip(batch, heard, strict=True) if not ok]
    if late:  # the lease was lost meanwhile: the send still happened
        yield lock_keys(c.claim.filing.ordering_key for c in late)
        for c in late:
            for fs in (yield from late_sent(cx, trail, c)):
                stamps[fs] = max(stamps.get(fs, 0), rows.us(c.now))
    yield from refresh_statuses(cx, stamps)
    yield from trail.flush()
    return heard


def _keys(batch: list[Completion]) -> list[tuple[str, int]]:
    return [(c.claim.delivery_id, c.claim.token) for c in batch]


def late_sent(cx: Cx, trail: Trail, c: Completion) -> Body[set[int]]:
    """Record a send whose lease was lost before it could be recorded (a stalled process,
    a reclaim): the receiver has the message, so a not-yet-sent delivery becomes
    ``delivered`` with its receipt (``lifecycle``: ``sent`` is legal from every state),
    whoever holds the lease now is fenced off; an already sent one gets a history row
    ``delivery.sent_again``. The filing seqs touched.

    The caller holds the delivery's ordering-key lock (its successors may be unblocked);
    the row is then locked too, so the state decided on is the one changed.
    """
    row = yield q("one", "late_sent_row", c.claim.delivery_id)
    if row is None:
        return set()
    seq, filing_seq, adapter, ordering_key, state, attempts = row
    details: dict[str, Any] = {
        "adapter": adapter,
        "receipt": c.receipt,
        "late": True,
        "state_before": state,
        "attempt": c.claim.attempts + 1,
    }
    if _S(state) not in logic.LATE_SENT_MOVES and state != "in_flight":
        trail.add(
            "delivery.sent_again",
            actor=values.SYSTEM,
            filing_id=c.claim.filing.id,
            delivery_id=c.claim.delivery_id,
            details=details,
            now=c.now,
        )
        return set()
    now_us = rows.us(c.now)
    yield q(
        "run",
        "late_sent",
        json.dumps(c.receipt),
        now_us,
        rows.us_or_none(c.ack_due_at),
        c.hold_until_ack,
        seq,
    )
    trail.add(
        "delivery.sent",
        actor=values.SYSTEM,
        filing_id=c.claim.filing.id,
        delivery_id=c.claim.delivery_id,
        details={**details, "attempts": attempts + 1},
        now=c.now,
    )
    touched = {filing_seq}
    if state in ("dead", "blocked", "cancelled"):  # its successors may go on now
        sub = Trail(c.now, cx.redactor)
        touched |= yield from reblock(cx, sub, values.SYSTEM, adapter, ordering_key, now_us)
        trail.extend(sub)
    return touched


# --- release, next due -------------------------------------------------------------------


def release(cx: Cx, *, owner: str, now: datetime) -> Body[int]:
    """Give back every lease ``owner`` holds (a process shutting down): the deliveries
    are claimable again at once, and other processes hear so."""
    now_us = rows.us(now)
    changed = yield q("all", "release_leases", now_us, owner)
    if not changed:
        return 0
    trail = Trail(now, cx.redactor)
    for delivery_id, filing_id, _, adapter, state in changed:
        trail.add(
            "delivery.released",
            actor=values.SYSTEM,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={"adapter": adapter, "state": state},
        )
    yield from refresh_status(cx, {r[2] for r in changed}, now_us)
    yield from trail.flush(notify="release")
    return len(changed)


def next_due(cx: Cx) -> Body[datetime | None]:
    value = yield q("val", "next_due")
    return None if value is None else rows.dt(value)


class DispatchStore(Driven):
    """The dispatch methods of ``Store`` (``accept`` is the drivers', ``complete`` the
    ``Store``'s: they coalesce concurrent callers, then run ``accept_many``/``complete_many``)."""

    #: claim transactions and the deliveries they took (logged at close)
    claim_stats: list[int]

    async def claim(
        self,
        *,
        owner: str,
        now: datetime,
        lease_s: float,
        limits: dict[str, int],
        probing: frozenset[str] = frozenset(),
    ) -> list[Claim]:
        claims = await self._tx(claim, owner, now, lease_s, limits, probing)
        self.claim_stats[0] += 1
        self.claim_stats[1] += len(claims)
        return claims

    renew = write(renew)
    release = write(release)
    next_due = read(next_due)

    async def schedule_retry(
        self, claim: Claim, *, now: datetime, at: datetime, error: str
    ) -> bool:
        details = {"error": error, "next_attempt_at": rows.iso(at)}
        return await self._tx(
            finish,
            claim,
            now,
            _S.WAITING_RETRY,
            at,
            error,
            True,
            "delivery.retry_scheduled",
            details,
        )

    async def defer(
        self,
        claim: Claim,
        *,
        now: datetime,
        until: datetime,
        reason: str,
        probe_failed: bool = False,
    ) -> bool:
        details = logic.deferred_details(reason, until, probe_failed)
        return await self._tx(
            finish,
            claim,
            now,
            _S.DEFERRED,
            until,
            reason,
            False,
            "delivery.deferred",
            details,
            probe_failed,
        )

    async def kill(self, claim: Claim, *, now: datetime, error: str, spent: bool = True) -> bool:
        return await self._tx(
            finish, claim, now, _S.DEAD, now, error, spent, "delivery.dead", {"error": error}
        )
