"""Issue 15: the hypothesis state machine over the REAL delivery lifecycle.

One machine is one gateway history: a store on a fresh database, two dispatchers (two
lease owners) driven step by step, the ``Service`` and ``AckService`` the API calls, a
manual clock, and a gated receiver that records what it took. Rules interleave intake,
claims, send outcomes decided while operator actions and acks arrive, acks (accepted,
rejected, resubmit E90, duplicate, late, conflicting), operator retry / cancel / resend /
close-ack, bulk retry / cancel, the ack deadline sweep, time (lease expiry, retry times)
and restarts (a crash leaves its leases to expire; a graceful stop releases them).

After every step ``invariants.check_all`` checks the five invariants of the issue.
``test_lifecycle_model`` runs it on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from gateway import errors, models, service, values
from gateway.audit import chain as audit
from gateway.clock import ManualClock
from gateway.delivery import acks
from gateway.delivery.dispatcher import Dispatcher
from gateway.store import base
from tests.lifecycle import harness, invariants

T0 = datetime(2026, 1, 7, 15, 0, tzinfo=UTC)  # a Wednesday: no calendar outage configured
OPERATOR = values.Actor("model-operator")
RECEIVER_ACKS = values.Actor("model-receiver")
ADAPTERS = ("ace", "copy")
COUNTS: collections.Counter[str] = collections.Counter()

#: ack kind → (outcome, codes)
ACK_KINDS = {
    "accepted": (models.AckOutcome.ACCEPTED, []),
    "warning": (models.AckOutcome.WARNING, ["W01"]),
    "rejected": (models.AckOutcome.REJECTED, ["X01"]),
    "resubmit": (models.AckOutcome.REJECTED, ["E90"]),
}
POSITIVE = (models.AckOutcome.ACCEPTED, models.AckOutcome.WARNING)
#: at most this many filings per history (each step reads them all)
MAX_FILINGS = 10
S = models.DeliveryState
#: states a dispatcher may claim from (in flight: once its lease has expired)
CLAIMABLE = frozenset({S.PENDING, S.WAITING_RETRY, S.DEFERRED, S.IN_FLIGHT})
#: where an operator action applies (it is tried elsewhere too, a quarter of the time)
FITS = {
    "retry": {S.DEAD, S.BLOCKED},
    "cancel": {S.PENDING, S.WAITING_RETRY, S.DEFERRED, S.BLOCKED, S.DEAD, S.IN_FLIGHT},
    "resend": {S.DELIVERED, S.ACKNOWLEDGED, S.REJECTED},
    "close": {S.DELIVERED, S.ACKNOWLEDGED, S.REJECTED},
}
#: what ``time_passes`` does, weighted by repetition: 31 s and 150 s pass the 30 s lease
#: (and the retry and breaker times); a beat renews one dispatcher's leases
TIME_MOVES = (
    *("+6s", "+31s", "+1s", "+150s", "+6s", "+31s", "+6s", "+150s"),
    *("beat", "beat", "sweep", "sweep", "+1s", "+6s"),
)
#: a restart ends every send in progress: at most one per this many steps
STEPS_BETWEEN_RESTARTS = 20


class LifecycleMachine(RuleBasedStateMachine):
    """One gateway history on one backend; ``make_backend`` and ``tmp_path`` are set per test."""

    make_backend: Callable[[], Awaitable[harness.Backend]]
    tmp_path: Path

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = ManualClock(T0)
        self.cfg = harness.lifecycle_config(self.tmp_path)
        self.receiver = harness.Receiver()
        self.trail = invariants.Trail(operator=OPERATOR.name)
        self.receiver.context_of = self.trail.context
        self.backend = self.run(type(self).make_backend())
        self.filings: list[str] = []
        self.order: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
        self.posted: list[models.Ack] = []
        self.said: dict[str, set[bool]] = collections.defaultdict(set)  # delivery → polarities
        self.states: dict[str, models.DeliveryState] = {}
        self.delivery_filing: dict[str, set[str]] = {}
        self.checked_gates = 0
        self.generation = 0
        self.boot()
        COUNTS["machines"] += 1

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def boot(self) -> None:
        """A gateway process on the machine's database: store, service, two dispatchers."""
        self.generation += 1
        self.steps_since_boot = 0
        self.store: base.Store = self.run(self.backend.open())
        self.service = service.Service(store=self.store, cfg=self.cfg, clock=self.clock)
        adapters = {name: harness.GatedAdapter(name, self.receiver) for name in ADAPTERS}
        self.dispatchers = [
            Dispatcher(
                store=self.store,
                adapters=adapters,
                cfg=self.cfg,
                clock=self.clock,
                owner=f"gen{self.generation}-p{i}",
            )
            for i in (1, 2)
        ]
        self.sends = [harness.Sends(d.owner) for d in self.dispatchers]
        self.sweeper = acks.AckRunner(
            service=self.service.acks,
            store=self.store,
            adapters=adapters,
            cfg=self.cfg,
            clock=self.clock,
        )

    async def stop(self, *, graceful: bool) -> None:
        for sends in self.sends:
            await sends.crash()
        if graceful:  # what Dispatcher.run does on its way out
            for d in self.dispatchers:
                await self.store.release(owner=d.owner, now=self.clock.now())
        await self.store.close()

    def teardown(self) -> None:
        try:
            self.run(self._verify_whole_chain())
            self.run(self.stop(graceful=False))
            self.run(self.backend.drop())
        finally:
            self.loop.close()

    async def _verify_whole_chain(self) -> None:
        """Each step verified the rows it added; at the end the whole trail is read again."""
        result = audit.verify_rows([r async for r in self.store.audit_rows()])
        assert result.ok, f"inv 3: the audit chain fails on a full read: {result}"

    # --- intake and dispatch ----------------------------------------------------------

    @precondition(lambda self: len(self.filings) < MAX_FILINGS)
    @rule(key=st.integers(0, 2), entry=st.booleans())
    def accept(self, key: int, entry: bool) -> None:
        n = len(self.filings)
        event = models.FilingEvent(
            filing_type=models.FilingType.ENTRY if entry else models.FilingType.ISF,
            environment=models.Environment.CERT,
            reference=f"R-{n}",
            filer_code="ABC",
            ordering_key=f"k{key}",
            payload=harness.X12_PAYLOAD if entry else {"n": n},
            content_type="application/edi-x12" if entry else None,
        )
        got = self.run(self.service.submit(service.Inbound(event=event), actor=OPERATOR))
        assert got.created
        self.filings.append(got.filing.id)
        for d in got.filing.deliveries:
            self.order[(got.filing.ordering_key, d.adapter)].append(d.id)
        COUNTS["accept (fan-out)" if entry else "accept"] += 1

    @precondition(lambda self: any(s in CLAIMABLE for s in self.states.values()))
    @rule(which=st.sampled_from([0, 1]))
    def dispatch(self, which: int) -> None:
        async def go() -> int:
            started = await self.dispatchers[which].dispatch_once(self.sends[which])
            await self.sends[which].parked()
            return started

        before = len(self.receiver.started)
        started = self.run(go())
        lease = timedelta(seconds=self.cfg.gateway.lease)
        for gate in self.receiver.started[before:]:  # claimed and started at this time
            gate.lease_until = self.clock.now() + lease
        COUNTS["dispatch: claimed" if started else "dispatch: nothing claimed"] += 1

    def heartbeat(self, which: int) -> None:
        """One beat of a dispatcher's lease heartbeat (``run`` beats every lease / 3); time
        advanced with no beat between is a stalled process, whose leases expire."""
        d, sends = self.dispatchers[which], self.sends[which]
        until = self.clock.now() + timedelta(seconds=self.cfg.gateway.lease)
        renewed = self.run(
            self.store.renew(
                owner=d.owner,
                tokens={c.delivery_id: c.token for c in sends.claims()},
                until=until,
            )
        )
        for gate in self.receiver.waiting:  # a lease that ran out stays presumed dead
            if gate.owner == d.owner and not gate.expired:
                gate.lease_until = until
        COUNTS["heartbeat: leases renewed" if renewed else "heartbeat: nothing to renew"] += 1

    @precondition(lambda self: bool(self.receiver.waiting))
    @rule(i=st.integers(0, 20), outcome=st.sampled_from(("took", *harness.OUTCOMES)))
    def finish_send(self, i: int, outcome: str) -> None:
        gate = self.receiver.waiting[i % len(self.receiver.waiting)]
        stale = self.states.get(gate.message.delivery_id) is not models.DeliveryState.IN_FLIGHT
        gate.open(outcome)
        self.run(harness.settle(gate))
        COUNTS[f"send {outcome}" + (" (its delivery no longer in flight)" if stale else "")] += 1

    # --- acknowledgements -------------------------------------------------------------

    @precondition(lambda self: bool(self.receiver.taken))
    @rule(
        i=st.integers(0, 50),
        kind=st.sampled_from(sorted(ACK_KINDS)),
        again=st.sampled_from([False, False, False, True]),
    )
    def ack(self, i: int, kind: str, again: bool) -> None:
        """An ack for something the receiver took, or (``again``) one posted before."""
        if again and self.posted:
            self.post(self.posted[i % len(self.posted)], "ack duplicate")
            return
        took = self.receiver.taken[i % len(self.receiver.taken)]
        outcome, codes = ACK_KINDS[kind]
        answer: dict[str, Any] = {"delivery_id": took.delivery_id}
        if took.controls is not None and i % 2:  # as a 997 would: by control numbers
            answer = {
                "interchange_control": took.controls[0],
                "group_control": took.controls[1],
                "x12_sender": harness.OURS,
                "x12_receiver": harness.THEIRS,
                "usage": "T",
            }
        ack = models.Ack(
            **answer,
            outcome=outcome,
            codes=codes,
            message=f"answer to attempt {took.attempt}",
        )
        latest = max(t.attempt for t in self.receiver.taken if t.delivery_id == took.delivery_id)
        positive = outcome in POSITIVE
        label = f"ack {kind}" + (" by X12 control numbers" if "delivery_id" not in answer else "")
        if (not positive) in self.said[took.delivery_id]:
            label += " (conflicting)"
        elif took.attempt < latest:
            label += " (late)"
        self.said[took.delivery_id].add(positive)
        self.post(ack, label)

    def post(self, ack: models.Ack, label: str) -> None:
        [record] = self.run(self.service.acks.record([ack], actor=RECEIVER_ACKS))
        assert record.matched, record
        self.posted.append(ack)
        COUNTS[label + (" (stored once)" if record.duplicate else "")] += 1

    def ack_sweep(self) -> None:
        flagged = self.run(self.sweeper.sweep(self.clock.now()))
        COUNTS["ack deadline sweep" + (" (flagged)" if flagged else "")] += 1

    # --- operators ----------------------------------------------------------------------

    @precondition(lambda self: bool(self.filings))
    @rule(
        i=st.integers(0, 50),
        action=st.sampled_from(["retry", "cancel", "resend", "close", "bulk"]),
        bulk=st.sampled_from(sorted(values.BULK_FROM)),
        state=st.integers(0, 6),
        adapter=st.sampled_from([None, *ADAPTERS]),
    )
    def operator(self, i: int, action: str, bulk: str, state: int, adapter: str | None) -> None:
        """An operator's action on one filing, or a bulk retry / cancel of up to 4."""
        if action == "bulk":
            self.bulk(bulk, state, adapter, 1 + i % 4)
            return
        fits = [f for f in self.filings if self._fits(f, action)]
        pool = fits if fits and i % 4 else self.filings  # mostly where it applies
        filing_id = pool[i % len(pool)]
        calls = {
            "retry": lambda: self.service.retry(filing_id, actor=OPERATOR),
            "cancel": lambda: self.service.cancel(filing_id, actor=OPERATOR),
            "resend": lambda: self.service.acks.resend(
                filing_id, actor=OPERATOR, reason="model: the receiver asked for it again"
            ),
            "close": lambda: self.service.acks.close(
                filing_id, actor=OPERATOR, reason="model: answer seen on the ACE portal"
            ),
        }
        flying = any(
            self.states.get(d) is models.DeliveryState.IN_FLIGHT
            for d in self.delivery_filing.get(filing_id, ())
        )
        try:
            self.run(calls[action]())
        except errors.Conflict as exc:  # refused: nothing may change (the invariants check)
            code = getattr(exc, "code", "")
            COUNTS[f"operator {action} (409{' ' + code if code else ''})"] += 1
        else:
            COUNTS[f"operator {action}" + (" (a delivery in flight)" if flying else "")] += 1

    def _fits(self, filing_id: str, action: str) -> bool:
        states = {self.states.get(d) for d in self.delivery_filing.get(filing_id, ())}
        return bool(states & FITS[action])

    def bulk(self, action: str, state: int, adapter: str | None, limit: int) -> None:
        allowed = values.BULK_FROM[action]
        chosen = None if state >= len(allowed) else models.DeliveryState(allowed[state])
        result = self.run(
            self.service.bulk(
                action,
                values.BulkFilter(state=chosen, adapter=adapter),
                actor=OPERATOR,
                reason="model: bulk action",
                limit=limit,
            )
        )
        flying = any(d[3] == "in_flight" for d in result.deliveries)
        COUNTS[
            f"bulk {action}"
            + (" (a delivery in flight)" if flying else "")
            + ("" if result.deliveries else " (none matched)")
        ] += 1

    # --- time and processes -------------------------------------------------------------

    @rule(what=st.sampled_from(TIME_MOVES))
    def time_passes(self, what: str) -> None:
        """The clock moves, a heartbeat beats, or the ack deadline sweep runs."""
        if what.startswith("+"):
            self.advance(float(what.strip("+s")))
        elif what == "beat":  # the dispatcher with the most sends in progress
            self.heartbeat(max((0, 1), key=lambda i: len(self.sends[i].claims())))
        else:
            self.ack_sweep()

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)  # past the 30 s lease: in-flight leases expire
        for gate in self.receiver.waiting:
            if gate.lease_until is not None and self.clock.now() >= gate.lease_until:
                gate.expired = True
        COUNTS[f"clock +{seconds:.0f}s"] += 1

    @precondition(lambda self: self.steps_since_boot >= STEPS_BETWEEN_RESTARTS)
    @rule(graceful=st.booleans())
    def restart(self, graceful: bool) -> None:
        """The process stops: a crash leaves its leases to expire, a graceful stop
        releases them; a new process opens the same database."""
        parked = len(self.receiver.waiting)
        self.run(self.stop(graceful=graceful))
        self.boot()
        COUNTS[
            ("restart (graceful)" if graceful else "restart (crash)")
            + (" with sends in progress" if parked else "")
        ] += 1

    # --- invariants ---------------------------------------------------------------------

    @invariant()
    def the_lifecycle_holds(self) -> None:
        async def read() -> tuple[list[models.FilingView], list[audit.AuditRow]]:
            page = await self.store.list_filings(values.ListFilter(), limit=500, cursor=None)
            rows = [r async for r in self.store.audit_rows(after_seq=self.trail.last_seq)]
            return page.items, rows

        filings, rows = self.run(read())
        self.trail.feed(rows)
        for row in rows:
            if row.event.startswith("delivery."):
                COUNTS[f"store: {row.event}"] += 1
                if row.details.get("reclaimed_expired_lease"):
                    COUNTS["store: expired lease reclaimed"] += 1
        self.delivery_filing = {f.id: {d.id for d in f.deliveries} for f in filings}
        self.states = {d.id: d.state for f in filings for d in f.deliveries}
        new_gates = self.receiver.started[self.checked_gates :]
        self.checked_gates = len(self.receiver.started)
        invariants.check_all(
            filings=filings,
            trail=self.trail,
            receiver=self.receiver,
            order=self.order,
            new_gates=new_gates,
        )
        COUNTS["steps checked"] += 1
        self.steps_since_boot += 1
