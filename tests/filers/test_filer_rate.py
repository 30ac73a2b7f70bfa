"""Issue 22: a delivery rate per filer code (``[quotas.filers.X] delivery_rate``). The claim
leaves out a filer out of tokens and takes at most its tokens; the rest stay claimable, in
per-key order; a deadline-near delivery of a limited filer waits for its tokens too, then
goes first among that filer's. Real stores (SQLite and PostgreSQL), the buckets alone, and
the config's refusals."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from gateway import config, errors, values
from gateway.rules import pacing
from gateway.store import base
from tests.filers.test_fair_delivery import ACTOR, HOUR, T0, backlog, new


async def claim(
    store: base.Store,
    n: int,
    *,
    out: list[str] | None = None,
    tokens: dict[str, int] | None = None,
) -> list[values.Claim]:
    """One claim on ``ace`` of up to ``n``: ``out`` left out, ``tokens`` the filers' rations;
    what it took is delivered at once."""
    rations = tokens or {}
    claims = await store.claim(
        owner="p1",
        now=T0,
        lease_s=60,
        limits={"ace": n},
        due_within_s=HOUR,
        filers={"ace": out or []},
        ration=lambda adapter, filer: rations.get(filer),
    )
    for c in claims:
        assert await store.complete(c, now=T0, receipt={"status": "ok"})
    return claims


def filers(claims: list[values.Claim]) -> Counter[str]:
    return Counter(c.filing.filer_code for c in claims)


async def test_a_filer_out_of_tokens_is_left_out_and_the_others_fill_the_claim(
    store: base.Store,
) -> None:
    """A (backlog first, so at the front of the fair order) out of tokens: a claim of 10 is
    all B's; with A back, A is claimed again. Then C, a new backlog of A's, and D (weight
    1000: its finish only just past its tag): a claim of 10 with A out takes C's and D's
    (the walk's bound, the others' largest finish, hides none of theirs)."""
    await backlog(store, "AAA", 30)
    await backlog(store, "BBB", 30)
    assert filers(await claim(store, 10, out=["AAA"])) == {"BBB": 10}
    assert filers(await claim(store, 10))["AAA"] >= 5
    while await claim(store, 10, out=["AAA"]):  # B's rest
        pass
    await backlog(store, "CCC", 2)
    await store.set_fair_weights({"DDD": 1000})
    await backlog(store, "AAA", 500, batch=500)
    await backlog(store, "DDD", 1)
    assert filers(await claim(store, 10, out=["AAA"])) == {"CCC": 2, "DDD": 1}


async def test_a_claim_takes_at_most_a_filers_tokens_and_loses_nothing(
    store: base.Store,
) -> None:
    """A has 2 tokens: a claim of 10 (fair order: 5 of A's first, 5 of B's) takes 2 of
    A's and fills the rest with B's (walking again without A); the A heads it did not take
    stay pending and are claimed later, each once, in their key's order."""
    await backlog(store, "AAA", 12)
    await store.accept(
        [new("AAA", f"AK-{i}", ordering_key="K") for i in range(3)], actor=ACTOR, now=T0
    )
    await backlog(store, "BBB", 20)
    first = await claim(store, 10, tokens={"AAA": 2})
    assert filers(first) == {"AAA": 2, "BBB": 8}
    seen = [c.filing.reference for c in first]
    while more := await claim(store, 4, tokens={"AAA": 1}):
        assert filers(more)["AAA"] <= 1
        seen += [c.filing.reference for c in more]
    assert sorted(seen) == sorted({*seen}) and len(seen) == 35  # every filing, once
    keyed = [r for r in seen if r.startswith("AK-")]
    assert keyed == ["AK-0", "AK-1", "AK-2"]


async def test_a_deadline_near_delivery_of_a_limited_filer_waits_for_its_tokens(
    store: base.Store,
) -> None:
    """A's filing due in 30 minutes (inside the deadline horizon) is not claimed while A is
    out of tokens (B's are); with one token, it is A's first, ahead of A's backlog."""
    await backlog(store, "AAA", 20)
    await store.accept(
        [new("AAA", "A-soon", due_by=T0 + timedelta(minutes=30))], actor=ACTOR, now=T0
    )
    await backlog(store, "BBB", 5)
    held = await claim(store, 3, out=["AAA"])
    assert filers(held) == {"BBB": 3}
    first = await claim(store, 3, tokens={"AAA": 1})
    assert [c.filing.reference for c in first if c.filing.filer_code == "AAA"] == ["A-soon"]


# --- the buckets -------------------------------------------------------------------------


def test_the_buckets_leave_a_filer_out_until_it_refills_and_forget_full_ones() -> None:
    """10/s, depth 2, per adapter: two claims empty A's bucket on ``ace`` (the second
    reports it), A is out for 100 ms, then in with one token; B (no rate) is never out;
    a full bucket is dropped. A fast filer waits for a batch (100 ms of its rate)."""
    rates = pacing.FilerRates(lambda code: (10.0, 2) if code == "AAA" else None)
    assert rates.allowance("ace", "AAA", T0) == 2 and rates.allowance("ace", "BBB", T0) is None
    assert rates.take("ace", "AAA", T0) is False
    assert rates.take("ace", "AAA", T0) is True
    assert rates.empty("ace", T0) == ["AAA"] and rates.empty("copy", T0) == []
    assert rates.wait_s(T0) == pytest.approx(0.1)
    later = T0 + timedelta(milliseconds=100)
    assert rates.empty("ace", later) == [] and rates.allowance("ace", "AAA", later) == 1
    assert rates.wait_s(later) is None
    rates.empty("ace", T0 + timedelta(seconds=1))
    assert rates.buckets["ace"] == {}
    # 50/s, depth 50: emptied, out until a batch (100 ms: 5) has accrued, not one token
    busy = pacing.FilerRates(lambda code: (50.0, 50))
    for _ in range(50):
        busy.take("ace", "AAA", T0)
    assert busy.wait_s(T0) == pytest.approx(0.1)
    assert busy.empty("ace", T0 + timedelta(milliseconds=60)) == ["AAA"]
    assert busy.empty("ace", T0 + timedelta(milliseconds=100)) == []


# --- config ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quotas", "key"),
    [
        ({"filers": {"ABC": {"delivery_rate": 0}}}, "quotas.filers.ABC.delivery_rate"),
        ({"filers": {"ABC": {"delivery_rate": "fast"}}}, "quotas.filers.ABC.delivery_rate"),
        ({"default": {"delivery_burst": 0, "delivery_rate": 1}}, "quotas.default.delivery_burst"),
        ({"filers": {"ABC": {"delivery_burst": 5}}}, "quotas.filers.ABC"),
        ({"filers": {"ABC": {"delivery_rates": 5}}}, "quotas.filers.ABC.delivery_rates"),
    ],
)
def test_a_bad_delivery_rate_is_refused_naming_the_key(quotas: Any, key: str) -> None:
    """Zero, not a number, a burst without a rate, a misspelt key: ConfigError, key first."""
    with pytest.raises(errors.ConfigError) as info:
        config.parse_config({"quotas": quotas}, {})
    assert str(info.value).startswith(key), str(info.value)


def test_a_delivery_rate_defaults_to_one_seconds_depth_and_leaves_intake_alone() -> None:
    """``delivery_rate = 2.5`` alone: depth 3; intake quotas stay off; default applies to
    every code without its own section."""
    cfg = config.parse_config(
        {"quotas": {"default": {"delivery_rate": 1}, "filers": {"ABC": {"delivery_rate": 2.5}}}},
        {},
    )
    assert cfg.quotas.delivering and not cfg.quotas.active
    assert cfg.quotas.for_filer("ABC").delivery == (2.5, 3)
    assert cfg.quotas.for_filer("ZZZ").delivery == (1.0, 1)
    assert not config.parse_config({}, {}).quotas.delivering
