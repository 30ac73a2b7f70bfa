"""The store contract: every operation, the same tests on SQLite and on PostgreSQL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import asyncpg
import pytest

from gateway import errors, ids, models, values
from gateway.audit import chain as audit
from gateway.audit import redact
from gateway.rules import normalize, outages
from gateway.store import base, postgres, rows, schema

T0 = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
ACTOR = values.Actor("ci", request_id="req-1")
LIMITS = {"ace": 10}


def new(
    reference: str = "REF-1",
    *,
    key: str | None = None,
    ordering_key: str | None = None,
    payload: dict[str, Any] | None = None,
    adapters: tuple[str, ...] = ("ace",),
    filing_type: str = "isf",
    environment: str = "cert",
    at: datetime = T0,
    due_by: datetime | None = None,
) -> values.NewFiling:
    event = models.FilingEvent(
        filing_type=models.FilingType(filing_type),
        environment=models.Environment(environment),
        reference=reference,
        filer_code="ABC",
        idempotency_key=key,
        ordering_key=ordering_key,
        payload=payload or {"ref": reference},
        due_by=due_by,
    )
    filing = normalize.normalize(event, filing_id=ids.new_id("fil"), received_at=at)
    return values.NewFiling(filing=filing, adapters=list(adapters))


async def accept(store: base.Store, *items: values.NewFiling, now: datetime = T0) -> list[str]:
    results = await store.accept(list(items), actor=ACTOR, now=now)
    return [r.filing_id for r in results]


async def claim(store: base.Store, *, at: datetime = T0, owner: str = "p1", lease_s: float = 30):
    return await store.claim(owner=owner, now=at, lease_s=lease_s, limits=LIMITS)


async def states(store: base.Store, filing_id: str) -> list[str]:
    view = await store.get_filing(filing_id)
    assert view is not None
    return [d.state.value for d in view.deliveries]


async def all_audit(store: base.Store) -> list[audit.AuditRow]:
    return [row async for row in store.audit_rows()]


# --- accept -----------------------------------------------------------------------------


async def test_accept_stores_filing_with_pending_delivery_per_adapter(store: base.Store) -> None:
    """An accepted filing is readable with one pending delivery for each routed adapter."""
    [fid] = await accept(store, new(adapters=("ace", "copy")))
    view = await store.get_filing(fid)
    assert view is not None
    assert view.reference == "REF-1"
    assert view.status is models.FilingStatus.PENDING
    assert sorted(d.adapter for d in view.deliveries) == ["ace", "copy"]
    assert {d.state for d in view.deliveries} == {models.DeliveryState.PENDING}
    assert await store.get_filing("fil_missing") is None


async def test_accept_answers_with_the_view_a_read_returns(store: base.Store) -> None:
    """The view accept builds from what it wrote (the 202's body) is what a read returns,
    for a pending filing and for one accepted behind a dead delivery (blocked)."""
    [first] = await store.accept([new("A", ordering_key="K")], actor=ACTOR, now=T0)
    [c] = await claim(store)
    assert await store.kill(c, now=T0, error="refused")
    [second] = await store.accept(
        [new("B", ordering_key="K", adapters=("ace", "copy"))], actor=ACTOR, now=T0
    )
    assert second.view is not None and second.view.status is models.FilingStatus.BLOCKED
    read = await store.get_filing(second.filing_id)
    assert read is not None
    assert second.view.model_dump(mode="json") == read.model_dump(mode="json")
    assert first.view is not None
    assert first.view.status is models.FilingStatus.PENDING
    assert [d.state for d in first.view.deliveries] == [models.DeliveryState.PENDING]
    assert first.view.model_dump(exclude={"status", "deliveries"}) == (
        await store.get_filing(first.filing_id)
    ).model_dump(exclude={"status", "deliveries"})


async def test_same_key_and_body_returns_the_first_filing(store: base.Store) -> None:
    """A repeated idempotency key with the same body returns the first id, created=False."""
    [first] = await store.accept([new(key="k-1")], actor=ACTOR, now=T0)
    [again] = await store.accept([new(key="k-1")], actor=ACTOR, now=T0)
    assert first.created
    assert not again.created
    assert again.filing_id == first.filing_id
    assert again.error is None
    page = await store.list_filings(values.ListFilter(), limit=10, cursor=None)
    assert len(page.items) == 1


async def test_same_key_different_body_is_idempotency_key_reused(store: base.Store) -> None:
    """A repeated idempotency key with another body is refused, naming the first filing."""
    [first] = await store.accept([new(key="k-1")], actor=ACTOR, now=T0)
    [other] = await store.accept([new(key="k-1", payload={"x": 2})], actor=ACTOR, now=T0)
    assert isinstance(other.error, errors.IdempotencyKeyReused)
    assert other.filing_id == first.filing_id


async def test_twenty_concurrent_duplicates_become_one_filing(store_factory: Any) -> None:
    """20 concurrent accepts of one key+body, from two store instances, store ONE filing."""
    stores = [await store_factory(), await store_factory()]
    results: list[values.AcceptResult] = []

    async def one(i: int) -> None:
        [r] = await stores[i % 2].accept([new(key="dup")], actor=ACTOR, now=T0)
        results.append(r)

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(one, i)
    assert len({r.filing_id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert all(r.error is None for r in results)
    page = await stores[0].list_filings(values.ListFilter(), limit=50, cursor=None)
    assert len(page.items) == 1
    assert len(page.items[0].deliveries) == 1


# --- claim, leases, fencing ---------------------------------------------------------------


async def test_claim_leases_due_deliveries_to_the_owner(store: base.Store) -> None:
    """A claim moves due deliveries to in_flight with a token; a second claim gets none."""
    fa, fb = await accept(store, new("A"), new("B"))
    claims = await claim(store)
    assert [c.filing.id for c in claims] == [fa, fb]
    assert all(c.attempts == 0 and c.token >= 1 for c in claims)
    assert claims[0].filing.payload == {"ref": "A"}
    assert await states(store, fa) == ["in_flight"]
    assert await claim(store, owner="p2") == []


async def test_claim_respects_per_adapter_limits(store: base.Store) -> None:
    """No more deliveries are claimed for an adapter than its limit allows."""
    await accept(store, *(new(f"R{i}") for i in range(5)))
    got = await store.claim(owner="p1", now=T0, lease_s=30, limits={"ace": 2, "other": 0})
    assert len(got) == 2


async def test_expired_lease_is_claimed_again_with_a_new_token(store: base.Store) -> None:
    """After the lease runs out another owner claims the delivery, with a higher token."""
    [fid] = await accept(store, new())
    [first] = await claim(store, lease_s=2)
    assert await claim(store, at=T0 + timedelta(seconds=1), owner="p2") == []
    [second] = await claim(store, at=T0 + timedelta(seconds=3), owner="p2")
    assert second.delivery_id == first.delivery_id
    assert second.token > first.token
    history = await store.filing_history(fid)
    assert history[-1].details.get("reclaimed_expired_lease") is True


async def test_renew_extends_the_lease_for_the_current_token_only(store: base.Store) -> None:
    """Renewal keeps a lease alive; a stale token renews nothing."""
    await accept(store, new())
    [c] = await claim(store, lease_s=2)
    later = T0 + timedelta(seconds=10)
    assert await store.renew(owner="p1", tokens={c.delivery_id: c.token}, until=later) == 1
    assert await claim(store, at=T0 + timedelta(seconds=5), owner="p2") == []
    assert await store.renew(owner="p1", tokens={c.delivery_id: c.token + 7}, until=later) == 0
    assert await store.renew(owner="p2", tokens={c.delivery_id: c.token}, until=later) == 0


async def test_a_send_after_a_lost_lease_is_still_recorded(store: base.Store) -> None:
    """A reclaimed claimant's send happened: it is recorded (delivered, its receipt kept)
    and fences the new claimant, whose own later send is history (``sent_again``)."""
    [fid] = await accept(store, new())
    [stale] = await claim(store, lease_s=1)
    [fresh] = await claim(store, at=T0 + timedelta(seconds=2), owner="p2")
    assert not await store.complete(stale, now=T0 + timedelta(seconds=3), receipt={"by": "p1"})
    assert await states(store, fid) == ["delivered"]
    assert not await store.complete(fresh, now=T0 + timedelta(seconds=4), receipt={"by": "p2"})
    view = await store.get_filing(fid)
    assert view is not None
    assert view.deliveries[0].receipt == {"by": "p1"}
    events = [r.event for r in await store.filing_history(fid)]
    assert events[-2:] == ["delivery.sent", "delivery.sent_again"]


async def test_a_failure_after_a_lost_lease_changes_nothing(store: base.Store) -> None:
    """A reclaimed claimant's failed send changes nothing: the new claimant decides."""
    [fid] = await accept(store, new())
    [stale] = await claim(store, lease_s=1)
    [fresh] = await claim(store, at=T0 + timedelta(seconds=2), owner="p2")
    later = T0 + timedelta(seconds=3)
    assert not await store.kill(stale, now=later, error="boom")
    assert not await store.schedule_retry(stale, now=later, at=later, error="boom")
    assert await states(store, fid) == ["in_flight"]
    assert await store.complete(fresh, now=later, receipt={"by": "p2"})
    view = await store.get_filing(fid)
    assert view is not None
    assert view.deliveries[0].receipt == {"by": "p2"}


async def test_complete_marks_delivered_and_filing_status(store: base.Store) -> None:
    """Completion records delivered, the receipt, one attempt and the delivery time."""
    [fid] = await accept(store, new())
    [c] = await claim(store)
    assert await store.complete(c, now=T0 + timedelta(seconds=1), receipt={"status": 200})
    view = await store.get_filing(fid)
    assert view is not None
    assert view.status is models.FilingStatus.DELIVERED
    d = view.deliveries[0]
    assert d.state is models.DeliveryState.DELIVERED
    assert d.attempts == 1
    assert d.receipt == {"status": 200}
    assert d.delivered_at == T0 + timedelta(seconds=1)
    assert not await store.complete(c, now=T0, receipt={})  # twice: history only
    again = await store.get_filing(fid)
    assert again is not None and again.deliveries[0].receipt == {"status": 200}


async def test_retry_is_scheduled_and_not_claimed_before_its_time(store: base.Store) -> None:
    """A scheduled retry waits until next_attempt_at, spends an attempt, then is claimable."""
    [fid] = await accept(store, new())
    [c] = await claim(store)
    at = T0 + timedelta(seconds=60)
    assert await store.schedule_retry(c, now=T0, at=at, error="503 busy")
    view = await store.get_filing(fid)
    assert view is not None
    d = view.deliveries[0]
    assert (d.state, d.attempts, d.next_attempt_at, d.last_error) == (
        models.DeliveryState.WAITING_RETRY,
        1,
        at,
        "503 busy",
    )
    assert view.status is models.FilingStatus.RETRYING
    assert await store.next_due() == at
    assert await claim(store, at=at - timedelta(seconds=1)) == []
    [again] = await claim(store, at=at)
    assert again.attempts == 1


async def test_defer_spends_no_attempt(store: base.Store) -> None:
    """A deferral (outage) waits until its time without counting an attempt."""
    [fid] = await accept(store, new())
    [c] = await claim(store)
    until = T0 + timedelta(hours=1)
    assert await store.defer(c, now=T0, until=until, reason="ACE outage")
    view = await store.get_filing(fid)
    assert view is not None
    assert view.status is models.FilingStatus.DEFERRED
    assert view.deliveries[0].attempts == 0
    assert view.deliveries[0].next_attempt_at == until
    assert await claim(store, at=until - timedelta(seconds=1)) == []
    assert len(await claim(store, at=until)) == 1


# --- ordering -----------------------------------------------------------------------------


async def test_one_in_flight_per_ordering_key_in_acceptance_order(store: base.Store) -> None:
    """Only the head of an ordering key is claimable; the next follows once it is done."""
    f1, f2, other, f3 = await accept(
        store,
        new("A1", ordering_key="K"),
        new("A2", ordering_key="K"),
        new("B"),
        new("A3", ordering_key="K"),
    )
    first = await claim(store)
    assert [c.filing.id for c in first] == [f1, other]
    assert await claim(store) == []
    await store.complete(first[0], now=T0, receipt={})
    [second] = await claim(store)
    assert second.filing.id == f2
    await store.schedule_retry(second, now=T0, at=T0 + timedelta(seconds=5), error="x")
    assert await claim(store, at=T0 + timedelta(seconds=1)) == []  # f3 waits behind f2
    [again] = await claim(store, at=T0 + timedelta(seconds=5))
    assert again.filing.id == f2
    await store.complete(again, now=T0, receipt={})
    [third] = await claim(store, at=T0 + timedelta(seconds=5))
    assert third.filing.id == f3


async def test_concurrent_claimers_never_hold_two_of_one_key(store_factory: Any) -> None:
    """Two stores claiming concurrently hold at most one delivery per key, in order."""
    stores = [await store_factory(), await store_factory()]
    keys = [f"K{k}" for k in range(5)]
    accepted: dict[str, list[str]] = {k: [] for k in keys}
    for i in range(6):
        for k in keys:
            [fid] = await accept(stores[0], new(f"{k}-{i}", ordering_key=k))
            accepted[k].append(fid)
    delivered: dict[str, list[str]] = {k: [] for k in keys}
    holding: dict[str, str] = {}
    violations: list[str] = []

    async def worker(store: base.Store, name: str) -> None:
        idle = 0
        while idle < 20:
            claims = await store.claim(owner=name, now=T0, lease_s=60, limits={"ace": 3})
            idle = 0 if claims else idle + 1
            for c in claims:
                key = c.filing.ordering_key
                if key in holding:
                    violations.append(f"{key}: {holding[key]} and {c.filing.id}")
                holding[key] = c.filing.id
            await anyio.sleep(0)
            for c in claims:
                del holding[c.filing.ordering_key]
                delivered[c.filing.ordering_key].append(c.filing.id)
                assert await store.complete(c, now=T0, receipt={})

    async with anyio.create_task_group() as tg:
        for i, s in enumerate(stores * 2):
            tg.start_soon(worker, s, f"p{i}")
    assert violations == []
    assert delivered == accepted


async def test_dead_delivery_blocks_successors_and_retry_unblocks(store: base.Store) -> None:
    """A dead delivery blocks later ones of its key (new ones too); retry puts all back."""
    f1, f2 = await accept(store, new("A1", ordering_key="K"), new("A2", ordering_key="K"))
    [c] = await claim(store)
    assert await store.kill(c, now=T0, error="rejected by schema")
    assert await states(store, f1) == ["dead"]
    assert await states(store, f2) == ["blocked"]
    [f3] = await accept(store, new("A3", ordering_key="K"))
    assert await states(store, f3) == ["blocked"]
    view = await store.get_filing(f2)
    assert view is not None
    assert view.status is models.FilingStatus.BLOCKED
    assert await claim(store) == []
    await store.retry_filing(f2, actor=ACTOR, now=T0)  # still behind the dead head
    assert await states(store, f2) == ["blocked"]
    action = await store.retry_filing(f1, actor=ACTOR, now=T0)
    assert action.changed == [c.delivery_id]
    assert await states(store, f1) == ["pending"]
    assert await states(store, f2) == ["pending"]
    assert await states(store, f3) == ["pending"]
    [again] = await claim(store)
    assert again.filing.id == f1
    assert again.attempts == 0


async def test_cancel_of_dead_head_unblocks_successors(store: base.Store) -> None:
    """Cancelling a dead delivery lets the blocked ones behind it go."""
    f1, f2 = await accept(store, new("A1", ordering_key="K"), new("A2", ordering_key="K"))
    [c] = await claim(store)
    await store.kill(c, now=T0, error="bad")
    action = await store.cancel_filing(f1, actor=ACTOR, now=T0)
    assert action.changed == [c.delivery_id]
    assert await states(store, f1) == ["cancelled"]
    assert await states(store, f2) == ["pending"]
    [next_] = await claim(store)
    assert next_.filing.id == f2
    with pytest.raises(errors.Conflict):
        await store.cancel_filing(f1, actor=ACTOR, now=T0)
    with pytest.raises(errors.NotFound):
        await store.retry_filing("fil_nope", actor=ACTOR, now=T0)


async def test_cancel_of_an_in_flight_delivery_is_refused(store: base.Store) -> None:
    """Cancel while a send is in flight: 409 delivery_in_flight naming the lease's end,
    nothing changes, and the send's outcome is recorded as it happened."""
    [fid] = await accept(store, new())
    [c] = await claim(store, lease_s=30)
    with pytest.raises(errors.Refused) as info:
        await store.cancel_filing(fid, actor=ACTOR, now=T0)
    assert info.value.code == "delivery_in_flight"
    assert info.value.details["retry_after"] == rows.iso(T0 + timedelta(seconds=30))
    assert await states(store, fid) == ["in_flight"]
    assert await store.complete(c, now=T0, receipt={"ok": True})
    assert await states(store, fid) == ["delivered"]
    events = [r.event for r in await store.filing_history(fid)]
    assert "delivery.cancelled" not in events and "delivery.sent" in events


async def test_release_gives_back_an_owners_leases(store: base.Store) -> None:
    """release() returns the owner's in-flight deliveries, claimable at once by others."""
    f1, f2 = await accept(store, new("A"), new("B"))
    [c1, c2] = await claim(store)
    await store.schedule_retry(c2, now=T0, at=T0, error="x")
    [c2b] = await claim(store, owner="p1")
    assert await store.release(owner="p2", now=T0) == 0
    assert await store.release(owner="p1", now=T0) == 2
    assert await states(store, f1) == ["pending"]
    assert await states(store, f2) == ["pending"]  # the attempt never finished
    assert not await store.kill(c1, now=T0, error="x")
    got = await claim(store, owner="p2")
    assert {c.delivery_id for c in got} == {c1.delivery_id, c2b.delivery_id}


# --- reads --------------------------------------------------------------------------------


async def test_listing_filters_and_paginates_newest_first(store: base.Store) -> None:
    """list_filings filters by each field and pages with a cursor, newest first."""
    ids_ = await accept(
        store,
        *(new(f"R{i}", filing_type="isf" if i % 2 else "entry") for i in range(7)),
        new("P", filing_type="entry", environment="production", at=T0 + timedelta(hours=1)),
    )
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list_filings(values.ListFilter(), limit=3, cursor=cursor)
        seen += [v.id for v in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(ids_))
    isf = await store.list_filings(
        values.ListFilter(filing_type=models.FilingType.ISF), limit=50, cursor=None
    )
    assert {v.reference for v in isf.items} == {"R1", "R3", "R5"}
    prod = await store.list_filings(
        values.ListFilter(environment=models.Environment.PRODUCTION), limit=50, cursor=None
    )
    assert [v.id for v in prod.items] == [ids_[-1]]
    ref = await store.list_filings(values.ListFilter(reference="R2"), limit=50, cursor=None)
    assert [v.id for v in ref.items] == [ids_[2]]
    since = await store.list_filings(
        values.ListFilter(since=T0 + timedelta(minutes=30)), limit=50, cursor=None
    )
    assert [v.id for v in since.items] == [ids_[-1]]
    until = await store.list_filings(
        values.ListFilter(until=T0 + timedelta(minutes=30)), limit=50, cursor=None
    )
    assert len(until.items) == 7
    [c, *_] = await claim(store)
    await store.complete(c, now=T0, receipt={})
    by_state = await store.list_filings(
        values.ListFilter(state=models.DeliveryState.DELIVERED, adapter="ace"),
        limit=50,
        cursor=None,
    )
    assert [v.id for v in by_state.items] == [c.filing.id]
    by_status = await store.list_filings(
        values.ListFilter(status=models.FilingStatus.DELIVERED), limit=50, cursor=None
    )
    assert [v.id for v in by_status.items] == [c.filing.id]
    with pytest.raises(errors.InvalidInput):
        await store.list_filings(values.ListFilter(), limit=3, cursor="garbage!")


async def test_counts_by_adapter_and_state(store: base.Store) -> None:
    """counts() tallies deliveries per adapter and state."""
    await accept(store, new("A", adapters=("ace", "copy")), new("B"))
    [c, *_] = await store.claim(owner="p", now=T0, lease_s=30, limits={"ace": 1})
    await store.complete(c, now=T0, receipt={})
    assert await store.counts() == {
        "ace": {"delivered": 1, "pending": 1},
        "copy": {"pending": 1},
    }


# --- audit and schema ---------------------------------------------------------------------


async def test_audit_chain_records_every_step_and_verifies(store: base.Store) -> None:
    """Every state change is an audit row; the chain verifies; history is per filing."""
    [fid] = await accept(store, new())
    [c] = await claim(store)
    await store.complete(c, now=T0, receipt={"ok": True})
    await store.append_audit("gateway.started", actor=values.SYSTEM, now=T0, details={"x": 1})
    rows_ = await all_audit(store)
    assert [r.event for r in rows_] == [
        "filing.accepted",
        "delivery.pending",
        "delivery.in_flight",
        "delivery.sent",
        "gateway.started",
    ]
    assert rows_[0].details["request_id"] == "req-1"
    assert rows_[0].actor == "ci"
    result = audit.verify_rows(rows_)
    assert result.ok
    assert result.rows == 5
    assert [r.seq for r in await store.filing_history(fid)] == [1, 2, 3, 4]
    assert [r.seq for r in [r async for r in store.audit_rows(after_seq=3)]] == [4, 5]


async def test_audit_chain_from_two_writers_is_one_chain(store_factory: Any) -> None:
    """Audit rows written concurrently through two store instances form one valid chain."""
    stores = [await store_factory(), await store_factory()]

    async def writer(i: int) -> None:
        for n in range(10):
            await stores[i % 2].accept([new(f"W{i}-{n}")], actor=ACTOR, now=T0)

    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(writer, i)
    rows_ = await all_audit(stores[1])
    assert len(rows_) == 80
    assert audit.verify_rows(rows_).ok


async def test_audit_rows_refuse_update_and_delete(store: base.Store, backend: str) -> None:
    """The database itself refuses to change or remove an audit row."""
    await accept(store, new())
    statements = ["UPDATE audit SET actor = 'mallory'", "DELETE FROM audit"]
    if backend == "postgres":
        statements.append("TRUNCATE audit")
    for sql in statements:
        with pytest.raises((sqlite3.DatabaseError, asyncpg.PostgresError), match="append-only"):
            await raw(store, backend, sql)
    assert audit.verify_rows(await all_audit(store)).ok


async def raw(store: Any, backend: str, sql: str) -> None:
    if backend == "postgres":
        async with store._pool.acquire() as conn:
            await conn.execute(sql)
    else:
        await store._writer.call(lambda: store._writer.conn.execute(sql))


async def test_migrate_is_idempotent_and_refuses_a_newer_schema(
    store: base.Store, backend: str
) -> None:
    """migrate() twice stays at SCHEMA_VERSION; a newer schema in the database is refused."""
    assert await store.migrate() == schema.SCHEMA_VERSION
    assert await store.schema_version() == schema.SCHEMA_VERSION
    await raw(store, backend, "UPDATE schema_version SET version = 99")
    assert await store.schema_version() == 99
    with pytest.raises(errors.StoreError, match="newer than this gateway knows"):
        await store.migrate()


async def test_a_v1_database_migrates_forward(
    store_factory: Any, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database left at schema v1 migrates to the current schema and keeps working.

    (Rows written at v1 by a v1 gateway are not simulated here: today's code writes columns
    that v1 lacks, which is exactly why serve refuses an old schema until it is migrated.)"""
    with monkeypatch.context() as patched:
        patched.setitem(schema.MIGRATIONS, backend, schema.MIGRATIONS[backend][:1])
        old = await store_factory()
        assert await old.schema_version() == 1
    assert await old.migrate() == schema.SCHEMA_VERSION
    [fid] = await accept(old, new("NEW", due_by=T0 + timedelta(hours=1)))
    assert next(c.filing.id for c in await claim(old)) == fid  # due_by orders the claim
    assert await old.flag_at_risk(now=T0, due_before=T0 + timedelta(hours=2)) == [
        (fid, T0 + timedelta(hours=1))
    ]
    result = await old.prune_audit(before=T0 + timedelta(days=1), actor=ACTOR, now=T0)
    assert result.removed > 0
    assert audit.verify_rows(await all_audit(old)).ok


# --- audit: head, prune, redaction --------------------------------------------------------


async def test_audit_head_is_the_last_row(store: base.Store) -> None:
    """audit_head() is None on an empty trail, then the (seq, hash) of the newest row."""
    assert await store.audit_head() is None
    await accept(store, new())
    last = (await all_audit(store))[-1]
    assert await store.audit_head() == (last.seq, last.hash)


async def three_hours_of_audit(store: base.Store) -> list[audit.AuditRow]:
    """Two rows at T0, two at T0+1h, two at T0+2h (one filing accepted each hour)."""
    for h in range(3):
        await accept(store, new(f"H{h}"), now=T0 + timedelta(hours=h))
    return await all_audit(store)


async def test_prune_removes_older_rows_and_anchors_the_chain(store: base.Store) -> None:
    """Rows written before `before` go; the audit.pruned anchor lets the rest verify."""
    before = await three_hours_of_audit(store)
    later = T0 + timedelta(days=400)
    result = await store.prune_audit(before=T0 + timedelta(minutes=90), actor=ACTOR, now=later)
    assert (result.removed, result.first_seq, result.last_seq, result.anchor_seq) == (4, 1, 4, 7)
    after = await all_audit(store)
    assert [r.seq for r in after] == [5, 6, 7]
    anchor = after[-1]
    assert anchor.event == audit.PRUNED
    assert anchor.actor == "ci"
    assert anchor.details == {
        "before": "2025-03-04T13:30:00.000000Z",
        "removed_from_seq": 1,
        "removed_to_seq": 4,
        "removed_rows": 4,
        "continues_from": before[3].hash,
        "request_id": "req-1",
    }
    verifier = audit.ChainVerifier()
    assert all(verifier.feed(r) for r in after)
    verified = verifier.finish()
    assert verified.ok
    assert (verified.first_seq, verified.last_seq) == (5, 7)
    assert await store.audit_head() == (7, anchor.hash)


async def test_prune_removes_nothing_inside_the_cutoff(store: base.Store) -> None:
    """Nothing older than `before` (or only what a prune already removed): no rows, no anchor."""
    rows_ = await three_hours_of_audit(store)
    nothing = values.PruneResult(removed=0, first_seq=None, last_seq=None, anchor_seq=None)
    assert await store.prune_audit(before=T0, actor=ACTOR, now=T0) == nothing
    assert await all_audit(store) == rows_
    first = await store.prune_audit(before=T0 + timedelta(hours=1), actor=ACTOR, now=T0)
    assert first.removed == 2
    again = await store.prune_audit(before=T0 + timedelta(hours=1), actor=ACTOR, now=T0)
    assert again == nothing
    assert audit.verify_rows(await all_audit(store)).ok


async def test_prune_of_every_row_continues_the_chain(store: base.Store) -> None:
    """Pruning the whole trail leaves the anchor at head+1, chained to the old head."""
    rows_ = await three_hours_of_audit(store)
    result = await store.prune_audit(before=T0 + timedelta(days=1), actor=ACTOR, now=T0)
    assert (result.removed, result.last_seq, result.anchor_seq) == (6, 6, 7)
    [anchor] = await all_audit(store)
    assert (anchor.seq, anchor.prev_hash) == (7, rows_[-1].hash)
    assert audit.verify_rows([anchor]).ok
    await accept(store, new("after"))
    assert audit.verify_rows(await all_audit(store)).ok


async def test_delete_is_refused_again_after_a_prune(store: base.Store, backend: str) -> None:
    """The prune guard opens only inside the prune: afterwards DELETE, UPDATE, TRUNCATE fail."""
    await three_hours_of_audit(store)
    await store.prune_audit(before=T0 + timedelta(hours=1), actor=ACTOR, now=T0)
    statements = ["DELETE FROM audit WHERE seq = 5", "UPDATE audit SET actor = 'mallory'"]
    if backend == "postgres":
        statements.append("TRUNCATE audit")
    for sql in statements:
        with pytest.raises((sqlite3.DatabaseError, asyncpg.PostgresError), match="append-only"):
            await raw(store, backend, sql)
    assert [r.seq for r in await all_audit(store)] == [3, 4, 5, 6, 7]


@pytest.mark.postgres
async def test_postgres_guard_cannot_be_faked_with_a_temporary_table(pg_schema_dsn: str) -> None:
    """A temp table named audit_prune_guard (first on search_path) does not open DELETE."""
    store = postgres.PostgresStore(pg_schema_dsn, retry_s=3.0)
    await store.open()
    try:
        await store.migrate()
        await accept(store, new())
        async with store._pool.acquire() as conn:  # type: ignore[union-attr]
            await conn.execute("CREATE TEMP TABLE audit_prune_guard (id INTEGER)")
            await conn.execute("INSERT INTO audit_prune_guard VALUES (1)")
            with pytest.raises(asyncpg.PostgresError, match="append-only"):
                await conn.execute("DELETE FROM audit")
            await conn.execute("DROP TABLE pg_temp.audit_prune_guard")
        assert len(await all_audit(store)) == 2
    finally:
        await store.close()


async def test_audit_details_are_redacted_before_hashing(store_factory: Any) -> None:
    """With a redactor, configured paths and secrets are masked in the stored, hashed row."""
    store = await store_factory(redactor=redact.Redactor(["importer.tax_id"]))
    details = {"importer": {"tax_id": "12-3456789AB"}, "password": "hunter2", "n": 1}
    await store.append_audit("config.loaded", actor=ACTOR, now=T0, details=details)
    [row] = await all_audit(store)
    assert row.details["importer"]["tax_id"] != "12-3456789AB"
    assert "hunter2" not in audit.canonical(row.details)
    assert row.details["n"] == 1
    assert row.details["request_id"] == "req-1"
    assert audit.verify_rows([row]).ok
    assert details["password"] == "hunter2"  # the caller's dict is left alone


# --- claim order --------------------------------------------------------------------------


async def test_claim_takes_earliest_due_by_first_then_acceptance_order(store: base.Store) -> None:
    """Heads are claimed by due_by (none last), ties and undated ones in acceptance order."""
    undated, late, soon, undated2, soon2 = await accept(
        store,
        new("A"),
        new("B", due_by=T0 + timedelta(hours=2)),
        new("C", due_by=T0 + timedelta(hours=1)),
        new("D"),
        new("E", due_by=T0 + timedelta(hours=1)),
    )
    first = await store.claim(owner="p1", now=T0, lease_s=30, limits={"ace": 2})
    assert [c.filing.id for c in first] == [soon, soon2]
    rest = await claim(store)
    assert [c.filing.id for c in rest] == [late, undated, undated2]


async def test_due_by_order_never_overtakes_within_an_ordering_key(store: base.Store) -> None:
    """A later filing of a key with an earlier due_by still waits behind its head."""
    head, _urgent = await accept(
        store,
        new("K1", ordering_key="K"),
        new("K2", ordering_key="K", due_by=T0 + timedelta(minutes=5)),
    )
    assert [c.filing.id for c in await claim(store)] == [head]


# --- outages ------------------------------------------------------------------------------


async def test_outages_are_added_listed_and_removed(store: base.Store) -> None:
    """add → listed (ended ones only with include_past) → remove; 404 unknown, 409 twice."""
    ace = await store.add_outage(
        outages.OutageRequest(adapter="ace", reason="CSMS 123", reference="CSMS-123"),
        actor=ACTOR,
        now=T0,
    )
    past = await store.add_outage(
        outages.OutageRequest(
            environment=models.Environment.CERT,
            starts_at=T0 - timedelta(hours=2),
            ends_at=T0 - timedelta(hours=1),
            reason="maintenance",
        ),
        actor=ACTOR,
        now=T0,
    )
    assert ace.starts_at == T0
    assert ace.created_by == "ci"
    assert await store.list_outages(now=T0) == [ace]
    assert await store.list_outages(now=T0, include_past=True) == [past, ace]
    removed = await store.remove_outage(ace.id, actor=ACTOR, now=T0 + timedelta(minutes=1))
    assert removed.removed_at == T0 + timedelta(minutes=1)
    assert await store.list_outages(now=T0) == []
    with pytest.raises(errors.Conflict):
        await store.remove_outage(ace.id, actor=ACTOR, now=T0)
    with pytest.raises(errors.NotFound):
        await store.remove_outage("out_nope", actor=ACTOR, now=T0)
    trail = await all_audit(store)
    assert [r.event for r in trail] == ["outage.added", "outage.added", "outage.removed"]
    assert trail[0].details["outage_id"] == ace.id
    assert trail[2].details["released_deliveries"] == 0
    assert audit.verify_rows(trail).ok


async def test_defer_held_defers_due_deliveries_without_spending_attempts(
    store: base.Store,
) -> None:
    """Due deliveries of the adapter move to deferred (audited once); others are untouched."""
    busy, waiting, other = await accept(store, new("A"), new("B"), new("C", adapters=("copy",)))
    [_busy, c_waiting] = await claim(store, lease_s=86400)
    await store.schedule_retry(c_waiting, now=T0, at=T0, error="503")
    until = T0 + timedelta(hours=1)
    assert await store.defer_held(adapter="ace", until=until, reason="ACE down", now=T0) == 1
    view = await store.get_filing(waiting)
    assert view is not None
    d = view.deliveries[0]
    assert (d.state, d.attempts, d.next_attempt_at, d.last_error) == (
        models.DeliveryState.DEFERRED,
        1,
        until,
        "ACE down",
    )
    assert view.status is models.FilingStatus.DEFERRED
    assert await states(store, busy) == ["in_flight"]
    assert await states(store, other) == ["pending"]
    # not due yet: untouched
    assert await store.defer_held(adapter="ace", until=until, reason="x", now=T0) == 0
    n_rows = len(await all_audit(store))
    # due again while still held: only its time moves, no new audit row
    later = T0 + timedelta(hours=2)
    assert await store.defer_held(adapter="ace", until=later, reason="still", now=until) == 1
    assert len(await all_audit(store)) == n_rows
    assert await claim(store, at=until) == []
    [again] = await claim(store, at=later)
    assert again.delivery_id == c_waiting.delivery_id
    deferred = [r for r in await all_audit(store) if r.event == "delivery.deferred"]
    assert [(r.filing_id, r.details["reason"]) for r in deferred] == [(waiting, "ACE down")]


async def test_defer_held_can_hold_one_environment(store: base.Store) -> None:
    """With an environment, only deliveries of filings in that environment are deferred."""
    cert, prod = await accept(store, new("C"), new("P", environment="production"))
    until = T0 + timedelta(hours=1)
    n = await store.defer_held(adapter="ace", environment="cert", until=until, reason="r", now=T0)
    assert n == 1
    assert await states(store, cert) == ["deferred"]
    assert await states(store, prod) == ["pending"]


async def test_removing_an_outage_makes_its_deferred_deliveries_due(store: base.Store) -> None:
    """remove_outage releases what the outage deferred, in its scope only, at once."""
    ace = await store.add_outage(outages.OutageRequest(adapter="ace"), actor=ACTOR, now=T0)
    cert = await store.add_outage(
        outages.OutageRequest(environment=models.Environment.CERT), actor=ACTOR, now=T0
    )
    a_cert, a_prod, c_cert, c_prod = await accept(
        store,
        new("AC"),
        new("AP", environment="production"),
        new("CC", adapters=("copy",)),
        new("CP", adapters=("copy",), environment="production"),
    )
    until = T0 + timedelta(days=1)
    for adapter in ("ace", "copy"):
        await store.defer_held(adapter=adapter, until=until, reason="held", now=T0)
    now = T0 + timedelta(minutes=5)
    limits = {"ace": 10, "copy": 10}
    assert await store.claim(owner="p", now=now, lease_s=30, limits=limits) == []
    await store.remove_outage(ace.id, actor=ACTOR, now=now)
    got = await store.claim(owner="p", now=now, lease_s=30, limits=limits)
    assert sorted(c.filing.id for c in got) == sorted([a_cert, a_prod])
    await store.remove_outage(cert.id, actor=ACTOR, now=now)
    got = await store.claim(owner="p", now=now, lease_s=30, limits=limits)
    assert [c.filing.id for c in got] == [c_cert]
    assert await states(store, c_prod) == ["deferred"]
    removed = [r for r in await all_audit(store) if r.event == "outage.removed"]
    assert [r.details["released_deliveries"] for r in removed] == [2, 1]


# --- deadlines ----------------------------------------------------------------------------


async def test_flag_at_risk_flags_each_filing_once(store: base.Store) -> None:
    """Filings due inside the margin or an outage window are flagged and audited once."""
    soon, in_window, far, undated, other_env = await accept(
        store,
        new("S", due_by=T0 + timedelta(minutes=30)),
        new("W", due_by=T0 + timedelta(hours=5)),
        new("F", due_by=T0 + timedelta(days=3)),
        new("U"),
        new("O", due_by=T0 + timedelta(hours=5), environment="production"),
    )
    window = values.RiskWindow(
        start=T0 + timedelta(hours=4),
        end=T0 + timedelta(hours=6),
        reason="ACE cert maintenance",
        adapter="ace",
        environment="cert",
    )
    flagged = await store.flag_at_risk(now=T0, due_before=T0 + timedelta(hours=1), windows=[window])
    assert flagged == [
        (soon, T0 + timedelta(minutes=30)),
        (in_window, T0 + timedelta(hours=5)),
    ]
    again = await store.flag_at_risk(now=T0, due_before=T0 + timedelta(days=1), windows=[window])
    assert again == [(other_env, T0 + timedelta(hours=5))]
    assert await store.flag_at_risk(now=T0, due_before=T0 + timedelta(days=9)) == [
        (far, T0 + timedelta(days=3))
    ]
    marks = [r for r in await all_audit(store) if r.event == "filing.at_risk"]
    assert [r.filing_id for r in marks] == [soon, in_window, other_env, far]
    assert marks[1].details == {
        "due_by": "2025-03-04T17:00:00.000000Z",
        "reason": "ACE cert maintenance",
    }
    view = await store.get_filing(undated)
    assert view is not None
    assert not view.at_risk


async def test_flag_at_risk_from_two_stores_flags_once(store_factory: Any) -> None:
    """Concurrent deadline scans in two processes flag (and audit) each filing once."""
    stores = [await store_factory(), await store_factory()]
    await stores[0].accept(
        [new(f"D{i}", due_by=T0 + timedelta(minutes=i)) for i in range(40)], actor=ACTOR, now=T0
    )
    results: list[list[tuple[str, datetime]]] = []

    async def scan(s: base.Store) -> None:
        results.append(await s.flag_at_risk(now=T0, due_before=T0 + timedelta(hours=1)))

    async with anyio.create_task_group() as tg:
        for s in stores * 3:
            tg.start_soon(scan, s)
    flagged = [f for r in results for f in r]
    assert len(flagged) == len({f for f, _ in flagged}) == 40
    rows_ = await all_audit(stores[1])
    assert sum(r.event == "filing.at_risk" for r in rows_) == 40
    assert audit.verify_rows(rows_).ok


async def test_at_risk_filter_lists_flagged_unsettled_filings(store: base.Store) -> None:
    """at_risk=True lists flagged filings not yet settled; a delivered one drops out."""
    risky, settled, calm = await accept(
        store,
        new("R", due_by=T0 + timedelta(minutes=10)),
        new("S", due_by=T0 + timedelta(minutes=20)),
        new("C", due_by=T0 + timedelta(days=2)),
    )
    await store.flag_at_risk(now=T0, due_before=T0 + timedelta(hours=1))
    claims = await claim(store)
    [done] = [c for c in claims if c.filing.id == settled]
    await store.complete(done, now=T0, receipt={})

    async def listed(at_risk: bool) -> list[str]:
        page = await store.list_filings(values.ListFilter(at_risk=at_risk), limit=10, cursor=None)
        return [v.id for v in page.items]

    assert await listed(True) == [risky]
    assert await listed(False) == [calm, settled]
    view = await store.get_filing(risky)
    assert view is not None
    assert view.at_risk
