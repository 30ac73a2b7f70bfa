"""Paced drain: a token bucket per adapter (rate per second, burst). Pure; time handed in."""

from __future__ import annotations

import math
from datetime import datetime


class TokenBucket:
    """``rate`` tokens a second accrue up to ``burst``; each send takes one."""

    def __init__(self, *, rate: float, burst: int, now: datetime) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self._at = now

    def _refill(self, now: datetime) -> None:
        elapsed = (now - self._at).total_seconds()
        if elapsed > 0:
            self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate)
            self._at = now

    def available(self, now: datetime) -> int:
        """Whole tokens available now."""
        self._refill(now)
        return math.floor(self.tokens + 1e-9)

    def take(self, n: int, now: datetime) -> None:
        self._refill(now)
        self.tokens -= n

    def wait_s(self, now: datetime, want: int = 1) -> float:
        """Seconds until ``want`` whole tokens (at most ``burst``)."""
        self._refill(now)
        want = max(1, min(want, self.burst))
        return 0.0 if self.tokens >= want else (want - self.tokens) / self.rate

    def batch(self, period_s: float) -> int:
        """Tokens worth claiming at once: ``period_s`` of the rate (1 to ``burst``). A paced
        drain that woke for every single token paid a whole claim cycle per send, and
        drained below its limit (bench row 10, F2); a batch of a few ms keeps the rate."""
        return max(1, min(self.burst, math.ceil(self.rate * period_s)))
