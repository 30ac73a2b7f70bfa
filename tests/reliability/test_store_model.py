"""Row 8: a hypothesis state machine over the store, on SQLite and on PostgreSQL, against a
small reference model (accept, claim, complete, fail, expire lease, retry, cancel, outage).

Invariants after every step: each delivery is in exactly one known state; attempts never
decrease (except by an operator retry, which resets them); at most one delivery in flight
per (ordering key, adapter); the audit trail only appends; a fenced completion succeeds
exactly when the model says the claim is still current.
"""

from __future__ import annotations

import asyncio
import collections
import os
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from gateway import errors, ids, models, values
from gateway.rules import normalize, outages
from gateway.store import base, postgres, sqlite
from tests.conftest import service_missing
from tests.reliability import relkit
from tests.reliability.conftest import record_figure
from tests.store.conftest import DSN_ENV, with_schema

T0 = datetime(2026, 1, 7, 17, 0, tzinfo=UTC)
LEASE_S = 30.0
ACTOR = values.Actor("model")
STATES = {s.value for s in models.DeliveryState}
SETTLED = {"delivered", "acknowledged", "cancelled"}
STEPS: collections.Counter[str] = collections.Counter()


class StoreMachine(RuleBasedStateMachine):
    """Drives one store; ``make_store`` is set per backend."""

    make_store: Any = None
    claims = Bundle("claims")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.store, self.cleanup = self.run(self.make_store())
        self.now = T0
        self.filings: list[str] = []
        self.state: dict[str, str] = {}  # delivery id → model state
        self.token: dict[str, int] = {}  # delivery id → the current claim's token
        self.attempts: dict[str, int] = {}
        self.filing_of: dict[str, str] = {}
        self.audit: list[tuple[int, str]] = []
        self.reset_ok: set[str] = set()  # filings an operator retry may reset this step
        self.outage: str | None = None
        STEPS["machines"] += 1

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            self.run(self.store.close())
            self.run(self.cleanup())
        finally:
            self.loop.close()

    # --- rules --------------------------------------------------------------------------

    @rule(key=st.integers(0, 2), adapters=st.sampled_from([("ace",), ("ace", "copy")]))
    def accept(self, key: int, adapters: tuple[str, ...]) -> None:
        event = models.FilingEvent(
            filing_type=models.FilingType.ISF,
            environment=models.Environment.CERT,
            reference=f"M-{len(self.filings)}",
            filer_code="ABC",
            ordering_key=f"k{key}",
            payload={"n": len(self.filings)},
        )
        filing = normalize.normalize(event, filing_id=ids.new_id("fil"), received_at=self.now)
        [res] = self.run(
            self.store.accept(
                [values.NewFiling(filing=filing, adapters=list(adapters))],
                actor=ACTOR,
                now=self.now,
            )
        )
        assert res.created
        self.filings.append(res.filing_id)
        view = self.run(self.store.get_filing(res.filing_id))
        assert len(view.deliveries) == len(adapters)
        for d in view.deliveries:
            self.state[d.id] = d.state.value
            self.attempts[d.id] = 0
            self.filing_of[d.id] = res.filing_id
        STEPS["accept"] += 1

    @rule(target=claims, owner=st.sampled_from(["p1", "p2"]))
    def claim(self, owner: str) -> Any:
        got = self.run(
            self.store.claim(
                owner=owner, now=self.now, lease_s=LEASE_S, limits={"ace": 3, "copy": 3}
            )
        )
        for c in got:
            assert self.state[c.delivery_id] not in SETTLED | {"dead"}, (c, self.state)
            self.state[c.delivery_id] = "in_flight"
            self.token[c.delivery_id] = c.token
        STEPS["claim"] += 1
        return got[0] if got else None

    def _fenced(self, c: values.Claim | None, op: str) -> None:
        if c is None:
            return
        current = self.token.get(c.delivery_id) == c.token and (
            self.state[c.delivery_id] == "in_flight"
        )
        if op == "complete":
            ok = self.run(self.store.complete(c, now=self.now, receipt={"status": "ok"}))
            new = "delivered"
        elif op == "fail":
            at = self.now + timedelta(seconds=5)
            ok = self.run(self.store.schedule_retry(c, now=self.now, at=at, error="boom"))
            new = "waiting_retry"
        elif op == "die":
            ok = self.run(self.store.kill(c, now=self.now, error="refused"))
            new = "dead"
        else:
            until = self.now + timedelta(seconds=60)
            ok = self.run(self.store.defer(c, now=self.now, until=until, reason="outage"))
            new = "deferred"
        assert ok == current, (op, c, self.state[c.delivery_id], self.token[c.delivery_id])
        if ok:
            self.state[c.delivery_id] = new
            self.token.pop(c.delivery_id)
        STEPS[op + ("" if ok else " (fenced)")] += 1

    @rule(c=consumes(claims))
    def complete(self, c: values.Claim | None) -> None:
        self._fenced(c, "complete")

    @rule(c=consumes(claims))
    def fail(self, c: values.Claim | None) -> None:
        self._fenced(c, "fail")

    @rule(c=consumes(claims))
    def die(self, c: values.Claim | None) -> None:
        self._fenced(c, "die")

    @rule(c=consumes(claims))
    def defer(self, c: values.Claim | None) -> None:
        self._fenced(c, "defer")

    @rule(c=claims)
    def complete_again(self, c: values.Claim | None) -> None:
        """A stale (already used, or reclaimed) claim: the fence must refuse it."""
        self._fenced(c, "complete")

    @rule(seconds=st.sampled_from([1.0, 6.0, LEASE_S + 1]))
    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)  # past LEASE_S: leases expire
        STEPS["advance"] += 1

    @rule(i=st.integers(0, 50))
    def operator_retry(self, i: int) -> None:
        if not self.filings:
            return
        fid = self.filings[i % len(self.filings)]
        self.reset_ok.add(fid)
        try:
            self.run(self.store.retry_filing(fid, actor=ACTOR, now=self.now))
        except errors.Conflict:  # nothing dead or blocked: refused, nothing changes
            STEPS["retry (409)"] += 1
        else:
            STEPS["retry"] += 1

    @rule(i=st.integers(0, 50))
    def cancel(self, i: int) -> None:
        if not self.filings:
            return
        fid = self.filings[i % len(self.filings)]
        try:
            self.run(self.store.cancel_filing(fid, actor=ACTOR, now=self.now))
        except errors.Conflict:
            STEPS["cancel (409)"] += 1
        else:
            STEPS["cancel"] += 1

    @precondition(lambda self: hasattr(self.store, "add_outage"))  # PG: after the parity port
    @rule()
    def outage_on_off(self) -> None:
        if self.outage is None:
            req = outages.OutageRequest(adapter="ace", reason="model outage")
            self.outage = self.run(self.store.add_outage(req, actor=ACTOR, now=self.now)).id
            self.run(
                self.store.defer_held(
                    adapter="ace",
                    until=self.now + timedelta(seconds=60),
                    reason="outage",
                    now=self.now,
                )
            )
        else:
            self.run(self.store.remove_outage(self.outage, actor=ACTOR, now=self.now))
            self.outage = None
        STEPS["outage"] += 1

    # --- invariants ---------------------------------------------------------------------

    @invariant()
    def store_agrees_with_the_model(self) -> None:
        in_flight: collections.Counter[tuple[str, str]] = collections.Counter()
        seen: set[str] = set()
        for fid in self.filings:
            view = self.run(self.store.get_filing(fid))
            for d in view.deliveries:
                assert d.id not in seen and d.state.value in STATES  # one state each
                seen.add(d.id)
                if d.attempts < self.attempts[d.id]:
                    assert fid in self.reset_ok, (d, self.attempts[d.id])
                self.attempts[d.id] = d.attempts
                was = self.state[d.id]
                if was in SETTLED:
                    assert d.state.value == was, (d, was)  # settled states never change
                if d.state.value == "in_flight":
                    in_flight[(view.ordering_key, d.adapter)] += 1
                self.state[d.id] = d.state.value
                if d.state.value != "in_flight":
                    self.token.pop(d.id, None)  # cancelled, released: the claim is stale
        assert seen == set(self.state)
        assert all(n <= 1 for n in in_flight.values()), in_flight
        self.reset_ok.clear()

    @invariant()
    def audit_only_appends(self) -> None:
        async def rows() -> list[tuple[int, str]]:
            return [(r.seq, r.hash) async for r in self.store.audit_rows()]

        now = self.run(rows())
        assert now[: len(self.audit)] == self.audit
        self.audit = now


SETTINGS = settings(
    max_examples=relkit.scale("row8_examples", 50),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def _run(backend: str, make_store: Any) -> None:
    started = time.monotonic()
    STEPS.clear()
    machine = type(f"{backend}Machine", (StoreMachine,), {"make_store": staticmethod(make_store)})
    run_state_machine_as_test(machine, settings=SETTINGS)
    ops = sum(v for k, v in STEPS.items() if k != "machines")
    fenced = sum(v for k, v in STEPS.items() if "fenced" in k)
    record_figure(
        f"row8.{backend}",
        f"{STEPS['machines']} runs, {ops} operations ({fenced} stale completions fenced), "
        f"0 invariant violations on {backend}"
        + ("" if STEPS["outage"] else " (outage rule: store has no outages yet)")
        + f", {time.monotonic() - started:.0f}s",
    )


def test_store_state_machine_matches_the_model_on_sqlite(tmp_path: Path) -> None:
    """Row 8 on SQLite: the invariants hold after every step of random histories."""

    async def make() -> tuple[base.Store, Any]:
        path = tmp_path / f"m{secrets.token_hex(4)}.db"
        store = sqlite.SqliteStore(path)
        await store.open()
        await store.migrate()

        async def cleanup() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

        return store, cleanup

    _run("sqlite", make)


@pytest.mark.postgres
@pytest.mark.services
def test_store_state_machine_matches_the_model_on_postgres() -> None:
    """Row 8 on PostgreSQL: the same machine, one fresh schema per run."""
    dsn = os.environ.get(DSN_ENV)
    if not dsn:
        service_missing(f"{DSN_ENV} is not set")
        return

    async def make() -> tuple[base.Store, Any]:
        schema = f"edigw_m_{secrets.token_hex(5)}"
        admin = await asyncpg.connect(dsn)
        await admin.execute(f"CREATE SCHEMA {schema}")
        store = postgres.PostgresStore(with_schema(dsn, schema), max_size=2)
        await store.open()
        await store.migrate()

        async def cleanup() -> None:
            await admin.execute(f"DROP SCHEMA {schema} CASCADE")
            await admin.close()

        return store, cleanup

    _run("postgres", make)
