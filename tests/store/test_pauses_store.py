"""Pauses in the store (issue 21), on SQLite and PostgreSQL: the claim skips the filing
types it is told are held, the key's later deliveries wait behind a held one, and a pause
is added, resumed and expired with its audit rows, once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gateway import errors, models
from gateway.rules import outages
from gateway.store import base
from tests.store.test_contract import ACTOR, LIMITS, T0, accept, all_audit, new


async def claimed_refs(store: base.Store, held: dict[str, list[str]] | None = None) -> list[str]:
    claims = await store.claim(owner="p1", now=T0, lease_s=30, limits=LIMITS, held=held)
    return sorted(c.filing.reference for c in claims)


async def test_claim_skips_held_filing_types_and_spends_nothing(store: base.Store) -> None:
    """A held type is not claimed (stays pending, 0 attempts); the other types go."""
    ids = await accept(store, new("ISF-1"), new("INB-1", filing_type="inbond"), new("ISF-2"))
    assert await claimed_refs(store, {"ace": ["inbond"]}) == ["ISF-1", "ISF-2"]
    inbond = await store.get_filing(ids[1])
    assert inbond is not None
    assert [(d.state, d.attempts) for d in inbond.deliveries] == [(models.DeliveryState.PENDING, 0)]
    assert await claimed_refs(store) == ["INB-1"]  # no longer held: claimed


async def test_a_held_delivery_keeps_its_key_waiting(store: base.Store) -> None:
    """A later filing of the same ordering key, of a type not held, waits behind the
    held one; a filing of another key goes."""
    await accept(
        store,
        new("INB-1", filing_type="inbond", ordering_key="K"),
        new("ISF-1", ordering_key="K"),
        new("ISF-2", ordering_key="OTHER"),
    )
    assert await claimed_refs(store, {"ace": ["inbond"]}) == ["ISF-2"]
    assert await claimed_refs(store) == ["INB-1"]  # in order: the head first, alone


async def test_held_types_apply_to_their_adapter_only(store: base.Store) -> None:
    """Holding a type on one adapter leaves the same filing's other delivery claimable."""
    await accept(store, new("INB-1", filing_type="inbond", adapters=("ace", "copy")))
    claims = await store.claim(
        owner="p1", now=T0, lease_s=30, limits={"ace": 5, "copy": 5}, held={"ace": ["inbond"]}
    )
    assert [c.adapter for c in claims] == ["copy"]


async def test_pause_resume_and_expiry_are_audited_once(store_factory: Any) -> None:
    """add → control.paused; resume → control.resumed (again: 409); an expired pause is
    resumed by whichever process gets there first, audited once."""
    one, two = await store_factory(), await store_factory()
    req = outages.PauseRequest(adapter="ace", filing_type="inbond", reason="CSMS: stop in-bond")
    p = await one.add_pause(req, actor=ACTOR, now=T0)
    assert p.id.startswith("pau_") and p.active_at(T0)
    ends = outages.PauseRequest(
        filing_type="isf", reason="VAN cut-over", ends_at=T0 + timedelta(hours=1)
    )
    timed = await one.add_pause(ends, actor=ACTOR, now=T0)
    _, listed = await two.controls(now=T0)
    assert [x.id for x in listed] == [p.id, timed.id]
    resumed = await two.resume_pause(p.id, actor=ACTOR, now=T0 + timedelta(minutes=1))
    assert resumed.resumed_by == "ci"
    try:
        await one.resume_pause(p.id, actor=ACTOR, now=T0 + timedelta(minutes=2))
        raise AssertionError("a second resume must be refused")
    except errors.Conflict:
        pass
    later = T0 + timedelta(hours=2)
    first, second = await one.expire_pauses(now=later), await two.expire_pauses(now=later)
    assert [x.id for x in first] == [timed.id] and second == []
    assert await one.list_pauses() == []
    assert len(await one.list_pauses(include_resumed=True)) == 2
    events = [(r.event, r.actor) for r in await all_audit(one) if r.event.startswith("control.")]
    assert events == [
        ("control.paused", "ci"),
        ("control.paused", "ci"),
        ("control.resumed", "ci"),
        ("control.resumed", "system"),
    ]


async def test_a_breaker_probe_skips_held_types_too(store: base.Store) -> None:
    """The probe claim (one delivery while a breaker is half-open) skips held types."""
    await accept(store, new("INB-1", filing_type="inbond"), new("ISF-1"))
    claims = await store.claim(
        owner="p1",
        now=T0,
        lease_s=30,
        limits={"ace": 1},
        probing=frozenset({"ace"}),
        held={"ace": ["inbond"]},
    )
    assert [c.filing.reference for c in claims] == ["ISF-1"]
