"""Paced drain: a token bucket per adapter (rate per second, burst), and per (adapter,
filer code) for the filers' delivery rates. Pure; time handed in."""

from __future__ import annotations

import math
from collections.abc import Callable
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
        drained below its limit (bench row 10, F2); a batch of a few ms keeps the rate.
        At most half the burst: waiting for a full bucket lost every token that would have
        accrued while the claim ran (row 10 at 500/s, burst 10: 0.67-0.72 of the rate
        with a batch of 10, 0.83-0.95 with 5)."""
        return max(1, min(self.burst // 2, math.ceil(self.rate * period_s)))


#: a filer out of delivery tokens is claimed again once this much of its rate has accrued
#: (or its depth): one claim per token cost ~4.5 ms of CPU per delivery at 50/s (bench F3)
FILER_BATCH_S = 0.1


class FilerRates:
    """``[quotas] delivery_rate``: a bucket per (adapter, filer code), each claimed
    delivery takes one token. A filer whose bucket holds less than a batch
    (``FILER_BATCH_S`` of its rate, 1 to its depth) is left out of the claim (``empty``)
    until it refills, while the others keep the adapter busy; a claim takes at most
    ``allowance`` of a filer's deliveries. A full bucket is forgotten (a new
    one starts full): only the filers that sent lately are kept, whatever the number of
    codes. Per process: N processes on one database deliver up to N x the rate."""

    def __init__(self, limit: Callable[[str], tuple[float, int] | None]) -> None:
        #: a filer code's (rate per second, depth), None when it has no delivery rate
        self.limit = limit
        self.buckets: dict[str, dict[str, TokenBucket]] = {}

    def _bucket(self, adapter: str, filer: str, now: datetime) -> TokenBucket | None:
        bucket = self.buckets.get(adapter, {}).get(filer)
        if bucket is None and (spec := self.limit(filer)) is not None:
            bucket = TokenBucket(rate=spec[0], burst=spec[1], now=now)
            self.buckets.setdefault(adapter, {})[filer] = bucket
        return bucket

    def empty(self, adapter: str, now: datetime) -> list[str]:
        """The filer codes short of a batch of tokens on ``adapter``: not to be claimed now."""
        kept = self.buckets.get(adapter, {})
        for filer in [f for f, b in kept.items() if b.available(now) >= b.burst]:
            del kept[filer]
        return sorted(f for f, b in kept.items() if b.available(now) < b.batch(FILER_BATCH_S))

    def allowance(self, adapter: str, filer: str, now: datetime) -> int | None:
        """How many of ``filer``'s deliveries a claim on ``adapter`` may take (None: any)."""
        bucket = self._bucket(adapter, filer, now)
        return None if bucket is None else bucket.available(now)

    def take(self, adapter: str, filer: str, now: datetime) -> bool:
        """Spend one claimed delivery's token; True when that emptied the bucket (the
        filer reached its rate: its deliveries wait for the refill)."""
        bucket = self._bucket(adapter, filer, now)
        if bucket is None:
            return False
        bucket.take(1, now)
        return bucket.available(now) < 1

    def wait_s(self, now: datetime) -> float | None:
        """Seconds until the first bucket short of a batch holds one (None: none short)."""
        waits = [
            b.wait_s(now, b.batch(FILER_BATCH_S))
            for kept in self.buckets.values()
            for b in kept.values()
        ]
        return min((w for w in waits if w > 0), default=None)
