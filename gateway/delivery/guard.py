"""The dispatcher's outage guard: calendars, announced outages, breakers and pacing at run time.

Before each claim the guard asks ``outages.decide`` for every adapter's gate. A closed
gate (``hold`` window, announced outage, open breaker) claims nothing and moves the
adapter's due deliveries to ``deferred`` until the earliest time it may send, in one
store operation (``defer_held``) rather than claiming and un-claiming each one. An open
gate claims up to the adapter's token bucket; a ``probe`` window or a half-open breaker
claims one at a time. The guard keeps breaker and bucket state for this process and
reports every breaker transition to the log and the audit trail.

Pauses (issue 21) are not outages: nothing is deferred. A paused adapter claims nothing;
a paused filing type, and a type a window holds (``hold``, ``refuse_intake``), is named
to the claim, which skips it (``Admission.held``). The pauses are read from the store
before each claim, with the announced outages (one read), so every process sees one
at its next claim; a pause whose end time has come is resumed here, audited once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog

from gateway import config, errors, models, values
from gateway.rules import breaker, outages, pacing
from gateway.store.base import Store

log = structlog.get_logger("gateway.rules.outages")

#: an open-ended announced outage defers deliveries this long, then looks again
RECHECK = timedelta(hours=1)
#: a paced adapter is claimed again once this much of its rate has accrued (or its burst)
PACE_BATCH_S = 0.02


class Mode(StrEnum):
    """Under what gate a delivery was claimed; decides what a failure costs."""

    NORMAL = "normal"
    PROBE_WINDOW = "probe_window"
    BREAKER_PROBE = "breaker_probe"


@dataclass(frozen=True, slots=True)
class Admission:
    """How many deliveries of one adapter may be claimed now, and under what mode."""

    limit: int | None
    mode: Mode
    #: filing types the claim must skip (paused, or held by a window)
    held: frozenset[str] = frozenset()


class Guard:
    """Per-process outage state of every adapter."""

    def __init__(
        self, *, store: Store, cfg: config.Config, adapters: Iterable[str], now: datetime
    ) -> None:
        self.store = store
        self.cfg = cfg
        calendars = outages.calendars_from_config(cfg)
        self.names = list(adapters)
        self.schedules: dict[str, outages.Schedule] = {}
        self.breakers: dict[str, breaker.Breaker] = {}
        self.buckets: dict[str, pacing.TokenBucket | None] = {}
        self.probes: dict[str, pacing.TokenBucket] = {}
        for name in self.names:
            section = cfg.adapters.get(name)
            cals = [calendars[c] for c in section.calendars] if section else []
            self.schedules[name] = outages.Schedule(cals)
            b = cfg.breaker_for(name)
            self.breakers[name] = breaker.Breaker(
                failure_threshold=b.failure_threshold,
                cooldown_s=b.cooldown,
                max_cooldown_s=b.max_cooldown,
            )
            rate = section.rate_limit if section else None
            self.buckets[name] = (
                None
                if rate is None or section is None
                else pacing.TokenBucket(rate=rate, burst=section.burst, now=now)
            )
            interval = section.probe_interval if section else 60.0
            self.probes[name] = pacing.TokenBucket(rate=1 / interval, burst=1, now=now)
        self.gates: dict[str, outages.Gate] = {}
        self.announced: list[outages.Outage] = []
        self.pauses: list[outages.Pause] = []
        self.type_rules = outages.TypeRules(cfg)
        #: per adapter: filing type → why it is held now (a pause, a window)
        self.held: dict[str, dict[str, str]] = {}

    async def _release_opened(
        self, name: str, previous: outages.Gate, gate: outages.Gate, now: datetime
    ) -> None:
        """A gate open again before the time it deferred to (a breaker closed by a send
        that was in flight, an outage removed while this cycle read it) releases what it
        held, which would otherwise wait out that time (up to an outage's recheck)."""
        closed = previous.state is outages.GateState.CLOSED
        if closed and gate.state is not outages.GateState.CLOSED:
            await self.store.release_deferred(adapter=name, now=now)
        for env in {e for e, _, _ in previous.environments} - {e for e, _, _ in gate.environments}:
            await self.store.release_deferred(environment=env, now=now)

    # --- before claiming ----------------------------------------------------------------

    async def admit(self, now: datetime, *, eager: bool = False) -> dict[str, Admission]:
        """Decide every adapter's gate; defer what a closed gate holds; return the limits.
        ``eager`` (new work woke the dispatcher): a paced adapter with any token is
        admitted, not only with a batch, so a filing that arrives during a drain (its tag at
        the front of the fair order) waits for one token, not for a batch."""
        try:
            self.announced, pauses = await self.store.controls(now=now)
            if any(not p.active_at(now) for p in pauses):
                for p in await self.store.expire_pauses(now=now):
                    log.warning("control.resumed", pause_id=p.id, target=p.target, expired=True)
            self.pauses = [p for p in pauses if p.active_at(now)]
        except errors.StoreError as exc:
            log.warning("outages.list_failed", error=str(exc))
        out: dict[str, Admission] = {}
        for name in self.names:
            brk = self.breakers[name]
            gate = outages.decide(
                adapter=name,
                schedule=self.schedules[name],
                outages=self.announced,
                breaker_until=brk.blocked_until(now),
                now=now,
                recheck=RECHECK,
            )
            previous = self.gates.get(name)
            if previous is None or previous.state != gate.state:
                log.info("adapter.gate", adapter=name, gate=gate.state.value, reason=gate.reason)
            self.gates[name] = gate
            if previous is not None:
                await self._release_opened(name, previous, gate, now)
            for env, until, reason in gate.environments:
                await self.store.defer_held(
                    adapter=name, environment=env, until=until, reason=reason, now=now
                )
            if gate.state is outages.GateState.CLOSED:
                assert gate.until is not None
                await self.store.defer_held(
                    adapter=name, until=gate.until, reason=gate.reason, now=now
                )
                out[name] = Admission(0, Mode.NORMAL)
                continue
            held = self._held(name, now)
            if None in held:  # the adapter itself is paused: claim nothing, defer nothing
                out[name] = Admission(0, Mode.NORMAL)
                continue
            limit: int | None = None
            mode = Mode.NORMAL
            bucket = self.buckets[name]
            if bucket is not None:  # a batch's worth at a time (``PACE_BATCH_S``)
                limit = bucket.available(now)
                limit = limit if limit >= _batch(bucket, eager) else 0
            if gate.state is outages.GateState.PROBE:
                limit = _min(limit, self.probes[name].available(now))
                mode = Mode.PROBE_WINDOW
            allowed = brk.allowance(now)
            if allowed is not None:
                limit = _min(limit, allowed)
                mode = Mode.BREAKER_PROBE
            out[name] = Admission(limit, mode, frozenset(t for t in held if t is not None))
        return out

    def _held(self, adapter: str, now: datetime) -> dict[str | None, str]:
        """What is held on ``adapter`` now: filing type (None: all) → why."""
        held: dict[str | None, str] = {
            t: f"{w.action.value} window ({w.calendar}) until {models.utc_iso(w.end)}"
            for t, w in self.type_rules.held(adapter, now).items()
        }
        for p in self.pauses:  # active_at: a stale list (a failed read) ends them on time
            if p.covers(adapter) and p.active_at(now):
                ftype = None if p.filing_type is None else p.filing_type.value
                held[ftype] = f"paused ({p.id}): {p.reason}"
        self.held[adapter] = {t or "*": why for t, why in held.items()}
        return held

    def held_environment(
        self, adapter: str, env: models.Environment
    ) -> tuple[datetime, str] | None:
        """An announced environment outage that a claimed delivery ran into (a race)."""
        gate = self.gates.get(adapter)
        for e, until, reason in gate.environments if gate else ():
            if e == env.value:
                return until, reason
        return None

    def claimed(self, adapter: str, mode: Mode, now: datetime) -> breaker.Transition | None:
        """Spend the tokens of one claimed delivery (and mark a breaker probe).

        Synchronous: only a breaker probe changes the breaker, and its transition (to be
        logged and audited) is returned for the caller to ``report``; every other claim
        awaited nothing here (an await per claimed delivery on the dispatcher's path)."""
        bucket = self.buckets[adapter]
        if bucket is not None:
            bucket.take(1, now)
        if mode is Mode.PROBE_WINDOW:
            self.probes[adapter].take(1, now)
        if mode is Mode.BREAKER_PROBE:
            return self.breakers[adapter].start_probe(now)
        return None

    def starved(self, adapter: str, now: datetime, *, eager: bool = False) -> bool:
        """A paced adapter whose bucket holds less than a batch (``eager``: than one
        token): nothing to claim yet."""
        bucket = self.buckets.get(adapter)
        return bucket is not None and bucket.available(now) < _batch(bucket, eager)

    def wait_s(self, now: datetime) -> float | None:
        """Seconds until a paced adapter may send a batch again (``PACE_BATCH_S`` of its
        rate), if one is waiting on tokens."""
        waits = [
            b.wait_s(now, b.batch(PACE_BATCH_S))
            for n, b in self.buckets.items()
            if b is not None and self.gates.get(n, _OPEN).state is not outages.GateState.CLOSED
        ]
        waits = [w for w in waits if w > 0]
        return min(waits) if waits else None

    # --- after sending ------------------------------------------------------------------

    async def succeeded(self, adapter: str, now: datetime) -> None:
        await self.report(adapter, self.breakers[adapter].record_success(now), now)

    def message_fault(self, adapter: str) -> None:
        """A send failed on its message alone: no verdict on the receiver; a half-open
        breaker's probe slot is free again for another delivery."""
        self.breakers[adapter].abandon_probe()

    async def failed(self, adapter: str, reason: str, now: datetime) -> None:
        await self.report(adapter, self.breakers[adapter].record_failure(now, reason), now)

    async def outage(
        self, adapter: str, reason: str, until: datetime | None, now: datetime
    ) -> None:
        await self.report(adapter, self.breakers[adapter].record_outage(now, reason, until), now)

    def breaker_until(self, adapter: str, now: datetime) -> datetime | None:
        return self.breakers[adapter].blocked_until(now)

    def probe_retry_at(self, adapter: str, now: datetime) -> datetime:
        section = self.cfg.adapters.get(adapter)
        return now + timedelta(seconds=section.probe_interval if section else 60.0)

    async def report(self, adapter: str, t: breaker.Transition | None, now: datetime) -> None:
        """Log and audit a breaker transition (nothing for ``None``)."""
        if t is None:
            return
        details: dict[str, Any] = {
            "adapter": adapter,
            "from": t.old.value,
            "to": t.new.value,
            "reason": t.reason,
        }
        if t.until is not None:
            details["until"] = models.utc_iso(t.until)
        log.warning("adapter.breaker", **details)
        try:
            await self.store.append_audit(
                f"adapter.breaker_{t.new.value}", actor=values.SYSTEM, now=now, details=details
            )
        except errors.StoreError as exc:
            log.error("adapter.breaker_audit_failed", adapter=adapter, error=str(exc))

    # --- views --------------------------------------------------------------------------

    def in_outage(self, adapter: str, now: datetime) -> bool:
        """Whether the adapter is held now (hold window, announced outage, open breaker, or
        a probe window): the ack deadline timer pauses while this is True."""
        return self.gates.get(adapter, _OPEN).state is not outages.GateState.OPEN

    def status(self, now: datetime) -> dict[str, dict[str, Any]]:
        """Breaker, gate and pacing of every adapter, for ``GET /v1/adapters``."""
        out: dict[str, dict[str, Any]] = {}
        for name in self.names:
            gate = self.gates.get(name, _OPEN)
            section = self.cfg.adapters.get(name)
            out[name] = {
                "breaker": self.breakers[name].status(now),
                "gate": {
                    "state": gate.state.value,
                    "until": models.utc_iso(gate.until),
                    "reason": gate.reason,
                },
                "paused": [p.model_dump(mode="json") for p in self.pauses if p.covers(name)],
                "held_types": self.held.get(name, {}),
                "calendars": list(section.calendars) if section else [],
                "rate_limit": section.rate_limit if section else None,
                "burst": section.burst if section else None,
            }
        return out

    def risk_windows(self, now: datetime, horizon: timedelta) -> list[values.RiskWindow]:
        """Known outages ahead: hold windows, announced outages, open breakers, and
        paused adapters (a paused filing type is not one: the store's check has no type)."""
        out: list[values.RiskWindow] = []
        for name, sched in self.schedules.items():
            for w in sched.windows(now, now + horizon):
                if w.policy is outages.Policy.HOLD:
                    out.append(
                        values.RiskWindow(w.start, w.end, f"hold window ({w.calendar})", name)
                    )
            until = self.breakers[name].blocked_until(now)
            if until is not None:
                out.append(values.RiskWindow(now, until, "circuit breaker open", name))
        far = now + horizon
        for p in self.pauses:  # a paused adapter sends nothing until it is resumed
            if p.adapter is not None and p.filing_type is None and p.active_at(now):
                out.append(values.RiskWindow(now, p.ends_at or far, f"paused ({p.id})", p.adapter))
        for o in self.announced:
            out.append(
                values.RiskWindow(
                    o.starts_at,
                    o.ends_at or far,
                    f"announced outage {o.id}",
                    o.adapter,
                    None if o.environment is None else o.environment.value,
                )
            )
        return out


_OPEN = outages.Gate(outages.GateState.OPEN)


def _min(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def limits_for(free: Mapping[str, int], admissions: Mapping[str, Admission]) -> dict[str, int]:
    """Claim limits: free concurrency capped by each adapter's admission."""
    out = {}
    for name, n in free.items():
        adm = admissions.get(name)
        out[name] = n if adm is None or adm.limit is None else max(0, min(n, adm.limit))
    return out


def _batch(bucket: pacing.TokenBucket, eager: bool) -> int:
    """The tokens a paced adapter waits for: a batch, or one when new work woke it."""
    return 1 if eager else bucket.batch(PACE_BATCH_S)
