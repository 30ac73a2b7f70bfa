"""The five invariants of issue 15, checked against real state after every step.

``Trail`` replays the audit trail: it verifies the hash chain row by row and rebuilds each
delivery's sequence of states from its ``delivery.*`` rows. The checks compare that
replay, the store's filings and the receiver's own record of what it took.

1. a message the receiver took is never recorded as unsent;
2. no delivery with a positive ack is sent again without an operator action (nor, as
   DESIGN.md says, moved at all by the gateway on its own: a conflicting ack changes nothing);
3. every state change has exactly one audit row, and the chain verifies;
4. at most one delivery in flight per (ordering key, adapter), and none is sent while an
   earlier live delivery of its key and adapter is not finished;
5. each filing's status equals ``models.derive_status`` of its deliveries' states.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gateway import models
from gateway.audit import chain as audit
from tests.lifecycle import harness

S = models.DeliveryState

#: the state a ``delivery.*`` audit row leaves its delivery in (None: the row's
#: ``details.state`` says it)
STATE_OF_EVENT: dict[str, S | None] = {
    "delivery.pending": S.PENDING,
    "delivery.blocked": S.BLOCKED,
    "delivery.in_flight": S.IN_FLIGHT,
    "delivery.sent": S.DELIVERED,
    "delivery.retry_scheduled": S.WAITING_RETRY,
    "delivery.deferred": S.DEFERRED,
    "delivery.dead": S.DEAD,
    "delivery.cancelled": S.CANCELLED,
    "delivery.retried": S.PENDING,
    "delivery.unblocked": S.PENDING,
    "delivery.resent": S.PENDING,
    "delivery.released": None,
    "delivery.acknowledged": S.ACKNOWLEDGED,
    "delivery.rejected": S.REJECTED,
    "delivery.resend_scheduled": S.WAITING_RETRY,
}
#: ``delivery.*`` rows that flag a delivery (or record history) without changing its state
FLAG_EVENTS = frozenset(
    {"delivery.ack_overdue", "delivery.ack_closed", "delivery.ack_conflict", "delivery.sent_again"}
)
#: rows that record a send the receiver took (``sent_again``: a late one, already sent)
SENT_EVENTS = frozenset({"delivery.sent", "delivery.sent_again"})
#: rows that may legitimately put a sent delivery back on the way out: an operator's resend
#: and an automatic resubmission (resubmit code before any positive ack)
REOPEN_EVENTS = frozenset({"delivery.resent", "delivery.resend_scheduled"})
#: an operator's resend (the one action that may send a positively acknowledged delivery)
OPERATOR_RESEND = "delivery.resent"
#: rows that may repeat their state: a new claim of an expired lease, a new deferral time
REPEATABLE = frozenset({"delivery.in_flight", "delivery.deferred"})
#: the states that say the receiver has the message
SENT_STATES = frozenset({S.DELIVERED, S.ACKNOWLEDGED, S.REJECTED})
#: the states a predecessor may be in when its successor is sent
FINISHED = frozenset({S.DELIVERED, S.ACKNOWLEDGED, S.CANCELLED})


class Violation(AssertionError):
    """An invariant does not hold; the message names it and the delivery."""


@dataclass
class History:
    """One delivery as its audit rows tell it."""

    rows: list[tuple[int, str, S]] = field(default_factory=list)
    #: operator resends and resubmissions so far
    epoch: int = 0
    #: epoch → rows recording a send in it (``SENT_EVENTS``)
    sent: collections.Counter[int] = field(default_factory=collections.Counter)
    #: claims so far (``delivery.in_flight`` rows, reclaims of an expired lease included)
    claims: int = 0
    positive: bool = False
    resends_since_positive: int = 0
    #: an operator acted on the delivery since its first positive ack
    operator_since_positive: bool = False

    @property
    def state(self) -> S | None:
        return self.rows[-1][2] if self.rows else None


class Trail:
    """The audit trail read so far: the chain verified, each delivery's history rebuilt."""

    def __init__(self, *, operator: str) -> None:
        #: the actor name of the machine's operator actions
        self.operator = operator
        self.verifier = audit.ChainVerifier()
        self.last_seq = 0
        self.of: dict[str, History] = collections.defaultdict(History)

    def context(self, delivery_id: str) -> tuple[int, bool, int]:
        """(epoch, positively acked with no operator resend since, claims) of a delivery."""
        h = self.of[delivery_id]
        return h.epoch, h.positive and h.resends_since_positive == 0, h.claims

    def abandoned(self, gate: harness.Gate) -> bool:
        """Whether a send in progress lost its lease, to a reclaim (a later claim of its
        delivery) or by letting it run out with no heartbeat: the gateway presumes such a
        sender dead and cannot know it is not. A send whose lease is kept alive is never
        abandoned, whatever was recorded of other sends of its delivery meanwhile."""
        return gate.expired or self.of[gate.message.delivery_id].claims > gate.claims_before + 1

    def feed(self, rows: Iterable[audit.AuditRow]) -> None:
        for row in rows:
            if not self.verifier.feed(row):
                failure = self.verifier.finish()
                raise Violation(
                    f"inv 3: the audit chain fails at row {failure.first_bad_seq}: {failure.reason}"
                )
            self.last_seq = row.seq
            if row.delivery_id and row.event.startswith("delivery."):
                self._apply(row)

    def _apply(self, row: audit.AuditRow) -> None:
        h = self.of[row.delivery_id or ""]
        if row.event in SENT_EVENTS:
            h.sent[h.epoch] += 1
        if row.event in FLAG_EVENTS:
            return
        if row.event not in STATE_OF_EVENT:
            raise Violation(
                f"inv 3: unknown delivery event {row.event!r} (row {row.seq}): the model does "
                "not know which state it leaves (tests/lifecycle/invariants.py STATE_OF_EVENT)"
            )
        new = STATE_OF_EVENT[row.event] or S(row.details["state"])
        if h.state is new and row.event not in REPEATABLE:
            raise Violation(
                f"inv 3: row {row.seq} {row.event} records no state change: "
                f"{row.delivery_id} was already {new} ({h.rows[-1][1]} at row {h.rows[-1][0]})"
            )
        if h.positive and not h.operator_since_positive:
            if row.actor != self.operator:
                raise Violation(
                    f"inv 2: row {row.seq} {row.event} by {row.actor} moves {row.delivery_id} "
                    f"from {h.state} to {new} after its positive ack, with no operator action "
                    f"(a positive ack is never undone by the gateway on its own): {_path(h)}"
                )
            h.operator_since_positive = True
        h.rows.append((row.seq, row.event, new))
        if new is S.IN_FLIGHT:
            h.claims += 1
        if row.event in REOPEN_EVENTS:
            h.epoch += 1
        if row.event == OPERATOR_RESEND and h.positive:
            h.resends_since_positive += 1
        if new is S.ACKNOWLEDGED:
            h.positive = True


def _path(h: History) -> str:
    return " → ".join(f"{event}:{state}" for _, event, state in h.rows)


def check_all(
    *,
    filings: Sequence[models.FilingView],
    trail: Trail,
    receiver: harness.Receiver,
    order: dict[tuple[str, str], list[str]],
    new_gates: Sequence[harness.Gate],
) -> None:
    """Every invariant, on the store's filings after one step. ``order`` lists each
    (ordering key, adapter)'s deliveries in acceptance order; ``new_gates`` are the sends
    that started in this step."""
    states: dict[str, S] = {}
    key_of: dict[str, tuple[str, str]] = {}
    in_flight: collections.Counter[tuple[str, str]] = collections.Counter()
    for view in filings:
        for d in view.deliveries:
            states[d.id] = d.state
            key_of[d.id] = (view.ordering_key, d.adapter)
            if d.state is S.IN_FLIGHT:
                in_flight[(view.ordering_key, d.adapter)] += 1
        # 5: the status is the one derived from the deliveries
        derived = models.derive_status([d.state for d in view.deliveries])
        if view.status is not derived:
            raise Violation(
                f"inv 5: filing {view.id} shows {view.status}, its deliveries "
                f"{[d.state.value for d in view.deliveries]} give {derived}"
            )
    # 3: the replayed audit rows end where the store is: no change without its row
    for delivery_id, state in states.items():
        h = trail.of[delivery_id]
        if h.state is not state:
            raise Violation(
                f"inv 3: {delivery_id} is {state} in the store, its audit rows leave it "
                f"{h.state}: {_path(h)}"
            )
    # 1: what the receiver took is recorded as sent
    takes: dict[str, list[harness.Took]] = collections.defaultdict(list)
    for took in receiver.taken:
        takes[took.delivery_id].append(took)
    for delivery_id, got in takes.items():
        h = trail.of[delivery_id]
        for epoch in sorted({t.epoch for t in got}):
            if not h.sent[epoch]:
                raise Violation(
                    f"inv 1: the receiver took {delivery_id} (attempt "
                    f"{[t.attempt for t in got if t.epoch == epoch]}) and the store has no "
                    f"delivery.sent for it: {_path(h)}"
                )
        if h.epoch in {t.epoch for t in got} and states[delivery_id] not in SENT_STATES:
            raise Violation(
                f"inv 1: the receiver took {delivery_id} and the store shows it "
                f"{states[delivery_id]}: {_path(h)}"
            )
    # 2: no send after a positive ack unless an operator resent it
    for took in receiver.taken:
        if took.unasked:
            raise Violation(
                f"inv 2: {took.delivery_id} was acknowledged and the receiver took it again "
                f"(attempt {took.attempt}) with no operator resend: "
                f"{_path(trail.of[took.delivery_id])}"
            )
    for gate in receiver.waiting:
        if gate.unasked:
            raise Violation(
                f"inv 2: {gate.message.delivery_id} was acknowledged and is being sent again "
                f"(attempt {gate.message.attempt}) with no operator resend: "
                f"{_path(trail.of[gate.message.delivery_id])}"
            )
    # 4: one in flight per key and adapter; nothing overtakes a live predecessor
    crowded = {k: n for k, n in in_flight.items() if n > 1}
    if crowded:
        raise Violation(f"inv 4: more than one delivery in flight per (key, adapter): {crowded}")
    # a send abandoned by an expired lease is not counted: no gateway can hold a key for
    # a sender it presumes dead (inv 1 still checks that its receipt, if any, is recorded)
    sending = {g.message.delivery_id for g in receiver.waiting if not trail.abandoned(g)}
    for gate in new_gates:
        delivery_id = gate.message.delivery_id
        line = order[key_of[delivery_id]]
        for earlier in line[: line.index(delivery_id)]:
            state = states[earlier]
            if state in FINISHED and not (state is S.CANCELLED and earlier in sending):
                continue
            raise Violation(
                f"inv 4: {delivery_id} is being sent while {earlier}, earlier on "
                f"{key_of[delivery_id]}, is {state}"
                + (" with its own send still in progress" if earlier in sending else "")
                + f": {_path(trail.of[earlier])}"
            )
