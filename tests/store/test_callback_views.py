"""Callback views on both backends: only an event that will go out again says when."""

from __future__ import annotations

from gateway.store import base
from tests.store.test_contract_more import T0, S, deliver, with_callback


async def test_a_callback_in_flight_or_delivered_shows_no_next_attempt(store: base.Store) -> None:
    """``next_attempt_at`` is set while an event waits to go out, None once it is in flight
    (its lease's end is not an attempt) or delivered."""
    await deliver(store, with_callback("A"))
    [waiting] = await store.list_callbacks(filing_id=None, state="pending", limit=5)
    assert waiting.next_attempt_at is not None
    [cb] = await store.claim_callbacks(owner="p1", now=T0 + 2 * S, lease_s=30, limit=5)
    [flying] = await store.list_callbacks(filing_id=None, state="in_flight", limit=5)
    assert flying.next_attempt_at is None
    assert await store.finish_callback(cb, now=T0 + 3 * S, state="delivered")
    [done] = await store.list_callbacks(filing_id=None, state="delivered", limit=5)
    assert (done.next_attempt_at, done.delivered_at) == (None, T0 + 3 * S)
