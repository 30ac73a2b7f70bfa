"""Group commit: concurrent calls that share a transaction behave as if made one by one.

Both backends coalesce concurrent writes (SQLite's writer thread, PostgreSQL's
``coalesce.Coalescer``); these tests run many calls at once and check what each caller
hears, the fencing, the ordering and the audit chain.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio

from gateway import errors, models, values
from gateway.audit import chain as audit
from gateway.store import base
from tests.store.test_contract import ACTOR, T0, accept, claim, new


async def all_audit(store: base.Store) -> list[audit.AuditRow]:
    return [r async for r in store.audit_rows()]


async def test_concurrent_completes_keep_fencing_and_audit_order(store: base.Store) -> None:
    """Completions made at once: a stale token's send is recorded all the same (it fences
    the new claimant, whose send is then history), each delivery is delivered once, and
    the audit rows follow the order of the calls and verify."""
    ids = await accept(store, *(new(f"R{i}") for i in range(6)))
    first = await claim(store, lease_s=1)
    assert len(first) == 6
    later = T0 + timedelta(seconds=2)
    second = await store.claim(owner="p2", now=later, lease_s=30, limits={"ace": 3})
    assert len(second) == 3
    retaken = {c.delivery_id for c in second}
    stale = [c for c in first if c.delivery_id in retaken]
    calls = stale + [c for c in first if c.delivery_id not in retaken] + second
    heard: dict[int, bool] = {}

    async def complete(i: int, c: values.Claim) -> None:
        heard[i] = await store.complete(c, now=later, receipt={"n": i})

    async with anyio.create_task_group() as tg:
        for i, c in enumerate(calls):
            tg.start_soon(complete, i, c)
    # a stale token never holds the fence; which of a retaken delivery's two sends is
    # recorded as the send and which as history depends on the order the batch applies
    assert [heard[i] for i in range(6)] == [False] * 3 + [True] * 3
    for fid in ids:
        view = await store.get_filing(fid)
        assert view is not None
        assert view.status is models.FilingStatus.DELIVERED
        [d] = view.deliveries
        assert d.attempts == 1
    trail = await all_audit(store)
    assert audit.verify_rows(trail).ok
    sent = [r.delivery_id for r in trail if r.event == "delivery.sent"]
    assert sorted(sent) == sorted(c.delivery_id for c in first)
    again = [r.delivery_id for r in trail if r.event == "delivery.sent_again"]
    assert sorted(again) == sorted(retaken)


async def test_concurrent_accepts_number_a_key_in_call_order(store: base.Store) -> None:
    """Accepts made at once: a repeated idempotency key is one filing, and one ordering
    key's filings are claimed in the order of the calls."""
    items = [new(f"A{i}", ordering_key="K") for i in range(5)]
    dup = [new("D", key="same"), new("D", key="same")]
    results: dict[int, list[values.AcceptResult]] = {}

    async def submit(i: int, item: values.NewFiling) -> None:
        results[i] = await store.accept([item], actor=ACTOR, now=T0)

    async with anyio.create_task_group() as tg:
        for i, item in enumerate(items + dup):
            tg.start_soon(submit, i, item)
    assert [results[i][0].created for i in range(7)] == [True] * 6 + [False]
    assert results[5][0].filing_id == results[6][0].filing_id
    order = []
    at = T0
    while got := [c for c in await claim(store, at=at) if c.filing.ordering_key == "K"]:
        [c] = got
        order.append(c.filing.id)
        assert await store.complete(c, now=at, receipt={})
        at += timedelta(seconds=1)
    assert order == [results[i][0].filing_id for i in range(5)]
    assert audit.verify_rows(await all_audit(store)).ok


async def test_concurrent_accepts_share_one_operation(store: base.Store) -> None:
    """Accepts made at once go to the store as one ``accept_many`` (one fair-state read,
    one audit head, one audit insert for all), on SQLite as on PostgreSQL: eight calls in
    at most two batches (the first may start alone), each with its own filing."""
    results: list[list[values.AcceptResult]] = []

    async def submit(i: int) -> None:
        results.append(await store.accept([new(f"S{i}")], actor=ACTOR, now=T0))

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(submit, i)
    accepts = store._accepts  # type: ignore[attr-defined]
    assert accepts.calls == 8 and accepts.batches <= 2, (accepts.calls, accepts.batches)
    assert len({r[0].filing_id for r in results}) == 8 and all(r[0].created for r in results)
    assert audit.verify_rows(await all_audit(store)).ok


async def test_a_failing_accept_fails_alone(store_factory: Any, backend: str) -> None:
    """One call whose statement fails alone fails alone; the calls that shared its
    transaction are committed. The failure: a NUL byte, which PostgreSQL refuses (SQLite
    stores it), and on SQLite a filing id that is already taken."""
    store = await store_factory()
    [taken] = await store.accept([new("T")], actor=ACTOR, now=T0)
    good = [new(f"G{i}") for i in range(4)]
    bad = new("B")
    broken = {"reference": "B\x00"} if backend == "postgres" else {"id": taken.filing_id}
    bad = values.NewFiling(filing=bad.filing.model_copy(update=broken), adapters=bad.adapters)
    outcome: dict[int, Any] = {}

    async def submit(i: int, item: values.NewFiling) -> None:
        try:
            outcome[i] = await store.accept([item], actor=ACTOR, now=T0)
        except errors.StoreError as exc:
            outcome[i] = exc

    async with anyio.create_task_group() as tg:
        for i, item in enumerate([*good[:2], bad, *good[2:]]):
            tg.start_soon(submit, i, item)
    assert isinstance(outcome[2], errors.StoreError)
    for i in (0, 1, 3, 4):
        [r] = outcome[i]
        assert r.created
        assert await store.get_filing(r.filing_id) is not None
    assert audit.verify_rows(await all_audit(store)).ok
