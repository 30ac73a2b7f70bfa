"""The accept and completion statements, on both backends: PostgreSQL receives their rows
as one JSON parameter that the statement unpacks (``sansio``'s "table" and "table_each"
requests; far cheaper for asyncpg than one array per column), and ``accept_filings`` takes
the ordering keys' locks itself. Every value must come back exactly as written, and an
accept must still wait for a key's lock held by another transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import asyncpg
import pytest

from gateway import ids, models, values
from gateway.audit import chain
from gateway.encoding import jsonio
from gateway.store import base, postgres, sansio
from tests.store.test_audit_rows_exact import AWKWARD

T0 = datetime(2026, 12, 3, 12, 0, 0, 123456, tzinfo=UTC)
ACTOR = values.Actor("ci")


def awkward_filing(i: int, text: str, *, payload: dict[str, object] | str) -> models.Filing:
    """A filing with ``text`` in every free-text column, and both kinds of payload."""
    return models.Filing(
        id=ids.new_id("fil"),
        filing_type=models.FilingType("isf"),
        environment=models.Environment("cert"),
        reference=f"ref {i} {text}",
        filer_code=f"F{i}",
        idempotency_key=f"key {i} {text}",
        ordering_key=f"order {i} {text}",
        due_by=T0 + timedelta(hours=i, microseconds=7) if i % 2 else None,
        payload=payload,
        content_type="application/json" if isinstance(payload, dict) else "text/plain",
        callback_url=f"https://example.test/cb?q={i}{text}" if i % 2 else None,
        metadata={"text": text, "n": i, "none": None, "list": [text, 1.5, True]},
        body_hash=f"hash {i} {text}",
        source=f"source {text}",
        source_event_id=f"event {i} {text}" if i % 2 else None,
        received_at=T0 + timedelta(microseconds=i),
    )


async def test_awkward_filings_and_receipts_are_stored_exactly(store: base.Store) -> None:
    """What accept writes is what a claim reads (the whole filing, payload included) and
    what completion writes is what a read shows (receipt, ack deadline, hold)."""
    made = [
        awkward_filing(i, text, payload={"text": text, "i": i} if i % 2 else f"{text} {i}")
        for i, text in enumerate(AWKWARD)
    ]
    results = await store.accept(
        [values.NewFiling(filing=f, adapters=["ace"]) for f in made], actor=ACTOR, now=T0
    )
    assert [(r.filing_id, r.created) for r in results] == [(f.id, True) for f in made]
    later = T0 + timedelta(hours=9)
    claims = await store.claim(owner="p1", now=later, lease_s=30, limits={"ace": 99})
    assert sorted((c.filing for c in claims), key=lambda f: f.id) == sorted(
        made, key=lambda f: f.id
    )
    done = T0 + timedelta(hours=10, microseconds=3)
    outcomes = []
    for i, c in enumerate(claims):
        receipt = {"text": AWKWARD[i % len(AWKWARD)], "i": i, "none": None}
        due = done + timedelta(minutes=i) if i % 2 else None
        outcomes.append((c, receipt, due, bool(i % 3)))
    async with anyio.create_task_group() as tg:  # concurrent: one coalesced completion
        for c, receipt, due, hold in outcomes:
            tg.start_soon(
                lambda c=c, r=receipt, d=due, h=hold: store.complete(
                    c, now=done, receipt=r, ack_due_at=d, hold_until_ack=h
                )
            )
    for c, receipt, due, _ in outcomes:
        view = await store.get_filing(c.filing.id)
        assert view is not None and view.status is models.FilingStatus.DELIVERED
        [d] = view.deliveries
        assert (d.state, d.receipt, d.delivered_at, d.attempts) == (
            models.DeliveryState.DELIVERED,
            receipt,
            done,
            1,
        )
        assert (d.id, d.ack_due_at) == (c.delivery_id, due)
    held = dict(await raw_rows(store, "SELECT id, hold_until_ack FROM deliveries"))
    assert {c.delivery_id: bool(held[c.delivery_id]) for c, *_ in outcomes} == {
        c.delivery_id: hold for c, _, _, hold in outcomes
    }
    assert chain.verify_rows([r async for r in store.audit_rows()]).ok


async def raw_rows(store: Any, sql: str) -> list[Any]:
    if hasattr(store, "_pool"):
        async with store._pool.acquire() as conn:
            return [tuple(r) for r in await conn.fetch(sql)]
    return await store._writer.call(lambda: store._writer.conn.execute(sql).fetchall())  # type: ignore[no-any-return]


def hold(key: str) -> sansio.Body[None]:
    yield sansio.LockKeys((key,))


@pytest.mark.postgres
async def test_an_accept_waits_for_its_ordering_keys_lock(pg_schema_dsn: str) -> None:
    """Another transaction holding a key's lock (as every body that blocks or unblocks a
    key takes it, ``LockKeys``) holds back an accept of that key until it commits."""
    store = postgres.PostgresStore(pg_schema_dsn, retry_s=3.0)
    await store.open()
    holder = await asyncpg.connect(pg_schema_dsn)
    try:
        await store.migrate()
        f = awkward_filing(1, "k", payload={"a": 1})
        tx = holder.transaction()
        await tx.start()
        await sansio.run_async(holder, hold(f.ordering_key))
        accepted = anyio.Event()

        async def accept() -> None:
            await store.accept([values.NewFiling(filing=f, adapters=["ace"])], actor=ACTOR, now=T0)
            accepted.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(accept)
            waiting = 0
            with anyio.fail_after(30):
                while not waiting:  # until the server shows the accept waiting for the lock
                    assert not accepted.is_set(), "the accept did not wait for the key's lock"
                    waiting = await holder.fetchval(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND NOT granted AND classid = $1::bigint::oid",
                        sansio.LOCK_ORDER_NS,
                    )
            assert not accepted.is_set()
            await tx.commit()
            with anyio.fail_after(30):
                await accepted.wait()
        view = await store.get_filing(f.id)
        assert view is not None and view.deliveries[0].state is models.DeliveryState.PENDING
    finally:
        await holder.close()
        await store.close()


@pytest.mark.postgres
async def test_the_jsonb_statements_stay_on_their_indexes(pg_schema_dsn: str) -> None:
    """The planner expects 100 rows of ``jsonb_array_elements``: without the LIMIT that
    says how many, the completion hashed every in-flight delivery, and without the scalar
    subquery an accept hashed every dead, rejected or blocked one; two rows must use the
    id and key indexes."""
    store = postgres.PostgresStore(pg_schema_dsn, retry_s=3.0)
    await store.open()
    conn = await asyncpg.connect(pg_schema_dsn)
    try:
        await store.migrate()
        made = [awkward_filing(i, "x", payload={"i": i}) for i in range(600)]
        items = [values.NewFiling(filing=f, adapters=["ace"]) for f in made]
        await store.accept(items, actor=ACTOR, now=T0)
        claims = await store.claim(owner="p1", now=T0, lease_s=30, limits={"ace": 300})
        assert len(claims) == 300  # 300 in flight, 300 blocked below
        await conn.execute("UPDATE deliveries SET state = 'blocked' WHERE state = 'pending'")
        await conn.execute("ANALYZE deliveries")
        texts = sansio.queries("postgres")

        async def plan(name: str, rows: list[tuple[object, ...]]) -> str:
            found = await conn.fetch(f"EXPLAIN {texts[name]}", jsonio.dumps(rows))
            return "\n".join(r[0] for r in found)

        sent = [(c.delivery_id, c.token, 1, "r", None, False) for c in claims[:2]]
        assert "deliveries_id_key" in await plan("complete_sent", sent)
        new = [(f"dlv_n{i}", 1, "f", "ace", made[i].ordering_key, 1, None, 1) for i in (0, 1)]
        accept_plan = await plan("accept_deliveries", new)
        assert "deliveries_order" in accept_plan or "deliveries_held" in accept_plan
        assert "Seq Scan on deliveries" not in accept_plan
    finally:
        await conn.close()
        await store.close()
