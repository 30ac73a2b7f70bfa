"""The dispatch life cycle, written once for both backends: claim, renew, the settling of
a claimed delivery (retry, deferred, dead), release, and the next due time. Accept is in
``accept``; a send (``complete``), also when recorded after the lease was lost, in
``complete``.

How they stay right with several PostgreSQL processes:

* **claims** lock only the head of each (adapter, ordering_key) group, ``FOR UPDATE SKIP
  LOCKED`` (see ``sql/postgres/dispatch.sql``, ``claim``, for why a successor can never
  be taken while its head is pending or in flight, in any process);
* every settling is **fenced** by the claim's lease token: a claimant whose lease ran out
  and was claimed again changes nothing, and hears so (False);
* a delivery that goes **dead** blocks its key's successors: the ordering-key lock is
  taken first (``status.lock_keys``), as every transaction that blocks or unblocks a key's
  deliveries does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from gateway import models, values
from gateway.audit import events
from gateway.store import rows
from gateway.store.sansio import Body, Cx, Driven, q, read, sql, write
from gateway.store.status import (
    block_successors,
    lock_keys,
    refresh_status,
)
from gateway.store.trail import Trail
from gateway.values import Claim

_S = models.DeliveryState
#: ``claim_due``'s bound for "any due_by" (an undated delivery's key is the next integer)
_DATED = 9223372036854775806


# --- claim ------------------------------------------------------------------------------


def claim(
    cx: Cx,
    owner: str,
    now: datetime,
    lease_s: float,
    limits: dict[str, int],
    probing: frozenset[str] = frozenset(),
    held: Mapping[str, Collection[str]] | None = None,
    due_within_s: float | None = None,
    filers: Mapping[str, Collection[str]] | None = None,
    ration: Callable[[str, str], int | None] | None = None,
) -> Body[list[Claim]]:
    """Take the heads of their ordering keys: those due within ``due_within_s`` (None: any
    due_by) earliest due first, then fairly across filer codes (``rules.fair``); a breaker
    probe (``probing``) takes a delivery that never failed a probe first; ``held`` names
    the filing types, ``filers`` the filer codes (out of delivery tokens), each adapter
    must not take now; ``ration(adapter, filer code)``: how many of its heads one claim may
    take (``rules.pacing.FilerRates``; the rest stay as they were)."""
    now_us = rows.us(now)
    lease_until = rows.us(now + timedelta(seconds=lease_s))
    due_until = _DATED if due_within_s is None else rows.us(now + timedelta(seconds=due_within_s))
    taken: list[Any] = []
    over: list[Any] = []
    for adapter, limit in limits.items():
        types = sorted((held or {}).get(adapter, ())) or None
        out = set((filers or {}).get(adapter, ()))
        kept: dict[int, Any] = {}
        left: dict[str, int | None] = {}
        while len(kept) < limit:  # again without the filers that ran out of tokens in it
            codes = sorted(out) or None
            if cx.dialect == "postgres":  # selects, locks and takes them in one statement
                args: tuple[Any, ...] = (adapter, now_us, owner, lease_until, types, codes)
            else:  # selects them only (see sql/sqlite/dispatch.sql)
                args = (adapter, now_us, *(v and json.dumps(v) for v in (types, codes)))
            n = limit - len(kept)
            got = yield from _heads(cx, args, n, due_until, adapter in probing, set(kept))
            for r in got:  # r[15]: the filer code (the filing's columns start at r[10])
                k = left[r[15]] if r[15] in left else ration and ration(adapter, r[15])
                if k is not None and k <= 0:
                    over.append(r)
                    out.add(r[15])
                else:
                    kept[r[7]] = r
                left[r[15]] = None if k is None else k - 1
            if len(out) == len(codes or ()):
                break
        taken += kept.values()
    if over and cx.dialect == "postgres":  # beyond a filer's rate: back as they were
        yield q("run", "claim_untake", now_us, [r[7] for r in over], [r[6] for r in over])
    if not taken:
        return []
    if cx.dialect == "sqlite":
        yield q("run", "claim_take", owner, lease_until, now_us, [r[7] for r in taken])
    trail = Trail(now, cx.redactor)
    claims = []
    for delivery_id, adapter, token, attempts, _, filing_id, was, *rest in taken:
        details: dict[str, Any] = {"adapter": adapter, "attempt": attempts + 1, "owner": owner}
        if was == "in_flight":
            details["reclaimed_expired_lease"] = True
        _system(trail, "delivery.in_flight", filing_id, delivery_id, details)
        filing = rows.filing(rest[3:])  # the filing's columns follow, after probe_failures
        claims.append(Claim(delivery_id, adapter, token, attempts, filing, rest[2]))
    yield from refresh_status(cx, {r[4] for r in taken}, now_us)
    yield from trail.flush()
    return claims


def _heads(
    cx: Cx, args: tuple[Any, ...], n: int, due_until: int, probe: bool, seen: set[int]
) -> Body[list[Any]]:
    """Up to ``n`` heads of one adapter, none of ``seen`` (selected before: SQLite's walks
    see them again), deadline-near first; PostgreSQL's walks take them as they go."""
    k = n if cx.dialect == "postgres" else n + len(seen)
    name, due = ("claim_probe", ()) if probe else ("claim_due", (due_until,))
    got = [r for r in (yield q("all", name, *args[:2], k, *args[2:], *due)) if r[7] not in seen]
    if len(got) < n and not probe:
        k = n - len(got) if cx.dialect == "postgres" else k
        seen = seen | {r[7] for r in got}
        got += [r for r in (yield q("all", "claim", *args[:2], k, *args[2:])) if r[7] not in seen]
    return got[:n]


def _system(trail: Trail, event: str, filing_id: str, delivery_id: str, details: Any) -> None:
    """One audit row of the gateway's own about one delivery."""
    trail.add(
        event, actor=values.SYSTEM, filing_id=filing_id, delivery_id=delivery_id, details=details
    )


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
    if row is None:  # fenced; a lease kept past a late record (``complete.late_sent``) ends
        yield q("run", "send_over", claim.delivery_id, claim.token)
        return False
    seq, filing_seq, adapter, ordering_key, attempts = row
    trail = Trail(now, cx.redactor)
    details = {"adapter": adapter, "attempts": attempts, **details}
    _system(trail, event, claim.filing.id, claim.delivery_id, details)
    touched = {filing_seq}
    if state is _S.DEAD:
        touched |= yield from block_successors(cx, trail, adapter, ordering_key, seq, now_us)
    yield from refresh_status(cx, touched, now_us)
    yield from trail.flush()
    return True


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
        _system(
            trail, "delivery.released", filing_id, delivery_id, {"adapter": adapter, "state": state}
        )
    yield from refresh_status(cx, {r[2] for r in changed}, now_us)
    yield from trail.flush(notify="release")
    return len(changed)


def set_fair_weights(cx: Cx, weights: Mapping[str, int]) -> Body[None]:
    """``[fairness] weights`` for every process's accepts (``rules.fair``); others are 1."""
    yield sql("run", "DELETE FROM fair_weights")
    yield q("rows", "fair_weights_set", sorted(weights.items()))


def filer_queue(cx: Cx) -> Body[dict[str, dict[str, int]]]:
    """Unsettled filings by filer code, then status (the queue by filer)."""
    out: dict[str, dict[str, int]] = {}
    for code, status, n in (yield q("all", "filer_queue")):
        out.setdefault(code, {})[status] = int(n)
    return out


def next_due(cx: Cx) -> Body[datetime | None]:
    value = yield q("val", "next_due")
    return None if value is None else rows.dt(value)


class DispatchStore(Driven):
    """The dispatch methods of ``Store`` (``accept`` is the drivers', ``complete`` the
    ``Store``'s: they coalesce concurrent callers, then run ``accept_many``/``complete_many``)."""

    #: claim transactions and the deliveries they took (logged at close)
    claim_stats: list[int]

    _claim = write(claim)

    async def claim(self, **kw: Any) -> list[Claim]:
        """``claim`` above (keyword arguments as there), counted."""
        claims = await self._claim(**kw)
        self.claim_stats[0] += 1
        self.claim_stats[1] += len(claims)
        return claims

    renew = write(renew)
    release = write(release)
    set_fair_weights = write(set_fair_weights)
    next_due = read(next_due)
    filer_queue = read(filer_queue)

    async def schedule_retry(
        self, claim: Claim, *, now: datetime, at: datetime, error: str
    ) -> bool:
        details = {"error": error, "next_attempt_at": rows.iso(at)}
        event = "delivery.retry_scheduled"
        return await self._tx(finish, claim, now, _S.WAITING_RETRY, at, error, True, event, details)

    async def defer(
        self,
        claim: Claim,
        *,
        now: datetime,
        until: datetime,
        reason: str,
        probe_failed: bool = False,
    ) -> bool:
        details = events.deferred_details(reason, until, probe_failed)
        args = (now, _S.DEFERRED, until, reason, False, "delivery.deferred", details, probe_failed)
        return await self._tx(finish, claim, *args)

    async def kill(self, claim: Claim, *, now: datetime, error: str, spent: bool = True) -> bool:
        return await self._tx(
            finish, claim, now, _S.DEAD, now, error, spent, "delivery.dead", {"error": error}
        )
