"""The circuit breaker and the token bucket: pure state machines on injected time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.rules import pacing
from gateway.rules.breaker import Breaker, BreakerState

T0 = datetime(2026, 1, 7, 17, 0, tzinfo=UTC)


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_breaker_opens_after_n_consecutive_transient_failures_and_sends_nothing():
    """Three failures in a row open it; a success in between resets the count."""
    b = Breaker(failure_threshold=3, cooldown_s=30, max_cooldown_s=120)
    assert b.record_failure(T0, "503") is None
    b.record_success(T0)
    assert b.record_failure(T0, "503") is None
    assert b.record_failure(T0, "503") is None
    t = b.record_failure(T0, "503")
    assert t is not None
    assert (t.old, t.new, t.until) == (BreakerState.CLOSED, BreakerState.OPEN, s(30))
    assert b.allowance(s(29)) == 0
    assert b.blocked_until(s(29)) == s(30)


def test_breaker_opens_at_once_on_an_outage_error_until_the_receivers_time():
    """OutageError(until) opens it immediately, until that time."""
    b = Breaker(failure_threshold=5, cooldown_s=30, max_cooldown_s=120)
    t = b.record_outage(T0, "down", s(300))
    assert t is not None
    assert t.new is BreakerState.OPEN
    assert b.blocked_until(s(299)) == s(300)


def test_breaker_half_open_lets_one_probe_and_its_cooldown_doubles_up_to_the_cap():
    """After the cool-down one probe goes; failures double the cool-down, capped; success closes."""
    b = Breaker(failure_threshold=1, cooldown_s=30, max_cooldown_s=100)
    b.record_failure(T0, "x")
    now = s(30)
    opens = []
    for _ in range(4):
        assert b.allowance(now) == 1
        assert b.start_probe(now).new is BreakerState.HALF_OPEN
        assert b.allowance(now) == 0  # one probe at a time
        t = b.record_failure(now, "still down")
        opens.append((t.until - now).total_seconds())
        now = t.until
    assert opens == [60, 100, 100, 100]
    b.start_probe(now)
    t = b.record_success(now)
    assert (t.old, t.new) == (BreakerState.HALF_OPEN, BreakerState.CLOSED)
    assert b.allowance(now) is None
    assert b.cooldown_s == 30


def test_token_bucket_releases_a_burst_then_the_rate():
    """burst at once, then rate per second; an idle bucket refills to burst, no more."""
    bucket = pacing.TokenBucket(rate=2, burst=5, now=T0)
    assert bucket.available(T0) == 5
    bucket.take(5, T0)
    assert bucket.available(T0) == 0
    assert bucket.wait_s(T0) == 0.5
    assert bucket.available(s(1)) == 2
    assert bucket.available(s(100)) == 5
