"""What every lifecycle body shares: filing statuses (and the callbacks a change queues),
ordering-key locks, re-deriving ``blocked`` along a key, and the in-flight refusal.

How they stay right with several PostgreSQL processes:

* ``refresh_statuses`` locks the filing rows first (in seq order, the order
  ``flag_at_risk`` locks them in too: fewer deadlocks), so the delivery states read next
  include every change committed by a concurrent refresher of the same filing, and the
  previous status is the one the last refresher wrote. Three statements whatever the
  number of filings. A filing with a ``callback_url`` whose status changed gets a status
  event queued in the same transaction (schema v5), so an event is queued exactly when
  the change commits.
* ``LockKeys`` serializes the transactions that insert, block or unblock deliveries of one
  ordering key, so a key's delivery ``seq`` order is its commit order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from gateway import errors, ids, models
from gateway.rules import callbacks, lifecycle
from gateway.store import rows
from gateway.store.sansio import Body, Cx, LockKeys, q
from gateway.store.trail import Trail
from gateway.values import SYSTEM, Actor

_E = lifecycle.Event
_S = models.DeliveryState

#: a send recorded after its lease was lost moves these to delivered (the rest: history)
LATE_SENT_MOVES = frozenset(lifecycle.sources(_E.SENT, to=_S.DELIVERED)) - {_S.IN_FLIGHT}


def lock_keys(keys: Iterable[str]) -> LockKeys:
    """``yield lock_keys(keys)``: the ordering-key locks, in one fixed order."""
    return LockKeys(tuple(sorted(set(keys))))


def refresh_status(cx: Cx, filing_seqs: Iterable[int], now_us: int) -> Body[None]:
    """Re-derive the filings' statuses; queue a callback where one changed."""
    yield from refresh_statuses(cx, dict.fromkeys(filing_seqs, now_us))


def refresh_statuses(cx: Cx, stamps: Mapping[int, int]) -> Body[None]:
    """``refresh_status`` with each filing's own time (filing seq → µs): a coalesced
    transaction of several callers."""
    if not stamps:
        return
    seqs = sorted(stamps)
    before = {r[0]: (r[1], r[2]) for r in (yield q("all", "status_filings_locked", seqs))}
    states: dict[int, list[models.DeliveryState]] = {s: [] for s in before}
    for fs, state in (yield q("all", "status_delivery_states", seqs)):
        states.setdefault(fs, []).append(models.DeliveryState(state))
    changes = [
        (models.derive_status(states[fs]).value, stamps[fs], fs) for fs in seqs if fs in before
    ]
    if not changes:
        return
    yield q("table", "set_statuses", changes)
    for status, at_us, fs in changes:
        previous, callback_url = before[fs]
        if callback_url and previous != status:
            yield from enqueue_callback(cx, fs, previous, status, at_us)


def enqueue_callback(
    cx: Cx, filing_seq: int, previous: str, status: str, now_us: int
) -> Body[None]:
    """Queue a status event for the filing's callback_url, in the caller's transaction."""
    if status not in callbacks.CALLBACK_STATUSES:
        return
    f = yield q("one", "callback_filing", filing_seq)
    deliveries = yield q("all", "callback_deliveries", filing_seq)
    timestamp = rows.iso(rows.dt(now_us))
    event, body = callbacks.callback_event(f, deliveries, previous, status, timestamp)
    text = json.dumps(body, separators=(",", ":"))
    yield q("run", "callback_enqueue", ids.new_id("evt"), f[0], f[4], event, text, now_us)


def reblock(
    cx: Cx, trail: Trail, actor: Actor, adapter: str, ordering_key: str, now_us: int
) -> Body[set[int]]:
    """Recompute ``blocked`` for one ordering key after an operator action; returns the
    filing seqs it touched."""
    touched: set[int] = set()
    blocked_by_predecessor = False
    found = yield q("all", "reblock_key", adapter, ordering_key)
    for seq, delivery_id, filing_id, filing_seq, state in found:
        if state in ("dead", "rejected"):
            blocked_by_predecessor = True
            continue
        # the lifecycle table says what a predecessor's death blocks and its release frees
        event = _E.PREDECESSOR_DEAD if blocked_by_predecessor else _E.PREDECESSOR_RELEASED
        new = lifecycle.step(_S(state), event)
        if isinstance(new, _S):
            yield q("run", "reblock_set", new.value, now_us, seq)
            trail.add(
                f"delivery.{'blocked' if new is _S.BLOCKED else 'unblocked'}",
                actor=actor,
                filing_id=filing_id,
                delivery_id=delivery_id,
                details={"adapter": adapter},
            )
            touched.add(filing_seq)
    return touched


def block_successors(
    cx: Cx, trail: Trail, adapter: str, ordering_key: str, after_seq: int, now_us: int
) -> Body[set[int]]:
    """Block the deliveries after ``after_seq`` of one (adapter, ordering key), in one
    statement; returns the filing seqs touched. The caller holds the key's lock."""
    changed = yield q("all", "block_successors", now_us, adapter, ordering_key, after_seq)
    for delivery_id, filing_id, _ in changed:
        trail.add(
            "delivery.blocked",
            actor=SYSTEM,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={"adapter": adapter, "ordering_key": ordering_key},
        )
    return {int(r[2]) for r in changed}


def find_filing(cx: Cx, filing_id: str) -> Body[tuple[int, str]]:
    """The filing's seq and ordering key; ``NotFound`` when there is no such filing."""
    row = yield q("one", "filing_seq_key", filing_id)
    if row is None:
        raise errors.NotFound(f"no filing {filing_id}", details={"id": filing_id})
    return int(row[0]), str(row[1])


def sending(state: str, owner: str | None, until: int, now_us: int) -> bool:
    """Whether a send of the delivery is in progress: it is ``in_flight``, or a claim's
    lease was kept past a late record of an older send (``complete.late_sent``) and has
    not run out. Either way ``available_at`` is the lease's end (at least)."""
    return state == _S.IN_FLIGHT.value or (owner is not None and until > now_us)


def refuse_in_flight(
    cx: Cx, seq: int, filing_id: str, event: lifecycle.Event, now_us: int
) -> Body[None]:
    """A send in progress (``sending``) stops an operator action on its filing whole: 409
    ``delivery_in_flight``, with the lifecycle table's reason.

    The lease's end is the moment the send's outcome is known at the latest (a stalled
    sender's lease runs out and the delivery is claimed again): the answer says to try
    again after it.
    """
    found: Any = yield q("all", "filing_delivery_states", seq)
    busy = [(d, rows.dt(at)) for d, state, at, owner in found if sending(state, owner, at, now_us)]
    refusal = lifecycle.refusal([_S.IN_FLIGHT] if busy else [], event)
    if refusal is None:
        return
    until = rows.iso(max(at for _, at in busy))
    raise errors.Refused(
        refusal.code,
        f"filing {filing_id}: {refusal.why}; try again after {until}",
        details={"id": filing_id, "deliveries": [d for d, _ in busy], "retry_after": until},
    )
