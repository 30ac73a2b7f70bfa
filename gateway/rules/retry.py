"""Retry is data, not sleep: ``RetryPolicy.decide`` returns when to try again, or None.

The backoff math is tenacity's (``wait_exponential_jitter``); the store persists the
decision as ``next_attempt_at`` so it survives restarts. Pure: ``now`` is handed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import tenacity

from gateway import config


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Try again at ``at`` (``delay_s`` after now)."""

    at: datetime
    delay_s: float


class RetryPolicy:
    """Exponential backoff with jitter, an attempt cap and a maximum age."""

    def __init__(self, section: config.RetrySection) -> None:
        self.section = section
        self._wait = tenacity.wait_exponential_jitter(
            multiplier=section.initial_delay,
            max=section.max_delay,
            jitter=section.jitter,
        )

    def delay_for(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (tenacity's math)."""
        state = tenacity.RetryCallState(
            retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={}
        )
        state.attempt_number = max(1, attempts)
        return self._wait(state)

    def decide(
        self,
        *,
        attempts: int,
        now: datetime,
        first_seen: datetime,
        retry_after: float | None = None,
    ) -> RetryDecision | None:
        """When to retry after ``attempts`` spent attempts, or None: give up (dead)."""
        if attempts >= self.section.max_attempts:
            return None
        delay = self.delay_for(attempts)
        if retry_after is not None:
            delay = max(0.0, retry_after)
        at = now + timedelta(seconds=delay)
        if at - first_seen > timedelta(seconds=self.section.max_age):
            return None
        return RetryDecision(at=at, delay_s=delay)

    def give_up_reason(self, *, attempts: int, now: datetime, first_seen: datetime) -> str:
        if attempts >= self.section.max_attempts:
            return f"gave up after {attempts} attempts (max_attempts={self.section.max_attempts})"
        return f"gave up: older than max_age ({self.section.max_age:g}s)"
