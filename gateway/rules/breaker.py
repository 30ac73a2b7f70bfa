"""A circuit breaker per adapter: a pure state machine; time is handed in.

closed ─(N consecutive transient failures, or one OutageError)→ open
open ─(cool-down over)→ half_open: exactly one probe may go
half_open ─(probe succeeds)→ closed      half_open ─(probe fails)→ open, cool-down doubled
The cool-down grows exponentially up to a cap and resets when the breaker closes.
Every method that changes the state returns the ``Transition`` (for logs and audit).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class BreakerState(StrEnum):
    """Where an adapter's breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change, with why and (when opening) until when."""

    old: BreakerState
    new: BreakerState
    reason: str
    until: datetime | None = None


class Breaker:
    """The breaker of one adapter."""

    def __init__(self, *, failure_threshold: int, cooldown_s: float, max_cooldown_s: float) -> None:
        self.failure_threshold = failure_threshold
        self.initial_cooldown_s = cooldown_s
        self.max_cooldown_s = max(cooldown_s, max_cooldown_s)
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.cooldown_s = cooldown_s
        #: while open: when the probe may go
        self.open_until: datetime | None = None
        self.probing = False

    def blocked_until(self, now: datetime) -> datetime | None:
        """While open and cooling down: when a probe may go; else None."""
        if self.state is BreakerState.OPEN and self.open_until is not None:
            return self.open_until if now < self.open_until else None
        return None

    def allowance(self, now: datetime) -> int | None:
        """How many sends may start now: None = no limit, 0 = none, 1 = the probe."""
        if self.state is BreakerState.CLOSED:
            return None
        if self.blocked_until(now) is not None or self.probing:
            return 0
        return 1

    def start_probe(self, now: datetime) -> Transition | None:
        """Record that the one probe is going out (open → half_open)."""
        if self.state is BreakerState.CLOSED:
            return None
        self.probing = True
        if self.state is BreakerState.OPEN:
            self.state = BreakerState.HALF_OPEN
            return Transition(BreakerState.OPEN, BreakerState.HALF_OPEN, "cool-down over; probing")
        return None

    def abandon_probe(self) -> None:
        """The probe told nothing about the receiver (its message was at fault): the
        next claim may probe with another delivery."""
        self.probing = False

    def record_success(self, now: datetime) -> Transition | None:
        self.failures = 0
        if self.state is BreakerState.CLOSED:
            return None
        old = self.state
        self.state, self.open_until, self.probing = BreakerState.CLOSED, None, False
        self.cooldown_s = self.initial_cooldown_s
        return Transition(old, BreakerState.CLOSED, "probe succeeded")

    def record_failure(self, now: datetime, reason: str) -> Transition | None:
        """A transient failure: counts toward opening; a failed probe re-opens."""
        if self.state is BreakerState.HALF_OPEN:
            self.cooldown_s = min(self.cooldown_s * 2, self.max_cooldown_s)
            return self._open(now, f"probe failed: {reason}", None)
        if self.state is BreakerState.OPEN:
            return None
        self.failures += 1
        if self.failures >= self.failure_threshold:
            why = f"{self.failures} consecutive transient failures; last: {reason}"
            return self._open(now, why, None)
        return None

    def record_outage(
        self, now: datetime, reason: str, until: datetime | None
    ) -> Transition | None:
        """An OutageError: open at once (until the receiver's ``until`` when it gave one)."""
        if self.state is BreakerState.HALF_OPEN:
            self.cooldown_s = min(self.cooldown_s * 2, self.max_cooldown_s)
        elif self.state is BreakerState.OPEN:
            if until is not None and self.open_until is not None and until > self.open_until:
                self.open_until = until
            return None
        return self._open(now, f"outage: {reason}", until)

    def _open(self, now: datetime, reason: str, until: datetime | None) -> Transition:
        old = self.state
        self.state, self.probing = BreakerState.OPEN, False
        self.open_until = until or now + timedelta(seconds=self.cooldown_s)
        return Transition(old, BreakerState.OPEN, reason, self.open_until)

    def status(self, now: datetime) -> dict[str, object]:
        """For ``GET /v1/adapters`` and the logs."""
        return {
            "state": self.state.value,
            "consecutive_failures": self.failures,
            "open_until": None if self.open_until is None else self.open_until.isoformat(),
            "cooldown_s": self.cooldown_s,
        }
