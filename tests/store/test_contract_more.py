"""The store contract, schema v4/v5 and monitoring: rejected inbound events, acks and ack
deadlines, X12 control numbers, status callbacks, queue stats and bulk actions — the
same tests on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import anyio
import pytest

from gateway import errors, ids, models, values
from gateway.audit import chain as audit
from gateway.encoding import x12
from gateway.rules import acks as ackrules
from gateway.store import base
from tests.store.test_contract import ACTOR, T0, accept, all_audit, claim, new, raw, states

S = timedelta(seconds=1)
URL = "https://example.test/hook"


def decide(ack: models.Ack, target: ackrules.AckTarget, now: datetime) -> ackrules.AckDecision:
    """A small stand-in for ``ackrules.Rules.decide``: accepted / rejected / warning=resend."""
    if ack.outcome is models.AckOutcome.ACCEPTED:
        return ackrules.AckDecision("acknowledged", models.DeliveryState.ACKNOWLEDGED)
    if ack.outcome is models.AckOutcome.REJECTED:
        return ackrules.AckDecision("rejected", models.DeliveryState.REJECTED, error="rejected")
    return ackrules.AckDecision(
        "resend_scheduled", models.DeliveryState.WAITING_RETRY, at=now + 60 * S, error="warn"
    )


def ack_for(delivery_id: str | None = None, outcome: str = "accepted", **kw: Any) -> models.Ack:
    return models.Ack(
        delivery_id=delivery_id, outcome=models.AckOutcome(outcome) if outcome else None, **kw
    )


async def record(store: base.Store, ack: models.Ack, at: datetime = T0) -> models.AckRecord:
    return await store.record_ack(ack, decide=decide, actor=ACTOR, now=at)


async def deliver(
    store: base.Store, *items: values.NewFiling, hold: bool = False, due_s: float | None = 60
) -> list[values.Claim]:
    """Accept, claim and complete each filing (one adapter), expecting an ack."""
    await accept(store, *items)
    claims = await claim(store)
    for c in claims:
        assert await store.complete(
            c,
            now=T0 + S,
            receipt={"ok": True},
            ack_due_at=None if due_s is None else T0 + due_s * S,
            hold_until_ack=hold,
        )
    return claims


def rejected(event_id: str | None, source: str = "q1", at: datetime = T0) -> models.RejectedEvent:
    return models.RejectedEvent(
        id=ids.new_id("rej"),
        source=source,
        origin=f"amqp:{source}",
        event_id=event_id,
        reason="filing_type: field required",
        details=[{"loc": "filing_type"}],
        body='{"x": 1}',
        content_type="application/json",
        received_at=at,
    )


# --- inbound (v4) -----------------------------------------------------------------------


async def test_rejected_event_is_kept_once_per_source_and_event_id(store: base.Store) -> None:
    """A redelivered event inserts nothing and writes no second audit row; no id: always kept."""
    assert await store.reject_event(rejected("m-1"))
    assert not await store.reject_event(rejected("m-1"))
    assert await store.reject_event(rejected("m-1", source="q2"))
    assert await store.reject_event(rejected(None))
    assert await store.reject_event(rejected(None))
    events = [r for r in await all_audit(store) if r.event == "event.rejected"]
    assert len(events) == 4
    assert events[0].actor == "source:q1"
    assert events[0].details["event_id"] == "m-1"


async def test_list_rejected_filters_by_source_and_pages_newest_first(store: base.Store) -> None:
    """list_rejected pages newest first with a cursor and filters by source."""
    for i in range(5):
        await store.reject_event(rejected(f"m-{i}", at=T0 + i * S))
    await store.reject_event(rejected("other", source="q2"))
    page, cursor = await store.list_rejected(source="q1", limit=3, cursor=None)
    assert [e.event_id for e in page] == ["m-4", "m-3", "m-2"]
    assert page[0].details == [{"loc": "filing_type"}]
    assert page[0].received_at == T0 + 4 * S
    rest, end = await store.list_rejected(source="q1", limit=3, cursor=cursor)
    assert [e.event_id for e in rest] == ["m-1", "m-0"]
    assert end is None
    everything, _ = await store.list_rejected(source=None, limit=10, cursor=None)
    assert len(everything) == 6


async def test_accept_records_the_source_event_id_in_the_audit(store: base.Store) -> None:
    """The inbound event id is part of the filing.accepted audit details."""
    item = new()
    item = values.NewFiling(
        filing=item.filing.model_copy(update={"source": "q1", "source_event_id": "m-9"}),
        adapters=item.adapters,
    )
    await accept(store, item)
    [accepted] = [r for r in await all_audit(store) if r.event == "filing.accepted"]
    assert accepted.details["source_event_id"] == "m-9"


async def test_accept_stores_the_source_event_id_on_the_filing(
    store: base.Store, backend: str, request: pytest.FixtureRequest
) -> None:
    """The filing read back carries its inbound event id."""
    item = new()
    item = values.NewFiling(
        filing=item.filing.model_copy(update={"source_event_id": "m-9"}), adapters=item.adapters
    )
    [fid] = await accept(store, item)
    view = await store.get_filing(fid)
    assert view is not None
    assert view.source_event_id == "m-9"


# --- acks and ack deadlines (v5) --------------------------------------------------------


async def test_complete_sets_the_ack_deadline_and_an_ack_acknowledges(store: base.Store) -> None:
    """complete(ack_due_at) keeps the deadline; an accepted ack → acknowledged, deadline kept."""
    [c] = await deliver(store, new())
    view = await store.get_filing(c.filing.id)
    assert view is not None
    assert view.deliveries[0].ack_due_at == T0 + 60 * S
    assert not view.deliveries[0].ack_overdue
    rec = await record(store, ack_for(c.delivery_id, codes=["A1"]), at=T0 + 2 * S)
    assert (rec.matched, rec.duplicate, rec.effect) == (True, False, "acknowledged")
    assert (rec.delivery_id, rec.filing_id) == (c.delivery_id, c.filing.id)
    view = await store.get_filing(c.filing.id)
    assert view is not None
    assert view.status is models.FilingStatus.ACKNOWLEDGED
    assert view.deliveries[0].ack is not None
    assert view.deliveries[0].ack["codes"] == ["A1"]
    events = [r.event for r in await store.filing_history(c.filing.id)]
    assert events[-3:] == ["delivery.sent", "ack.received", "delivery.acknowledged"]
    sent = (await store.filing_history(c.filing.id))[-3]
    assert sent.details["ack_due_at"] == "2025-03-04T12:01:00.000000Z"


async def test_same_ack_twice_is_a_duplicate_that_changes_nothing(store: base.Store) -> None:
    """The second copy of an ack returns the first record, marked duplicate, no new rows."""
    [c] = await deliver(store, new())
    first = await record(store, ack_for(c.delivery_id))
    again = await record(store, ack_for(c.delivery_id, source="sftp"), at=T0 + 9 * S)
    assert again.duplicate
    assert again.id == first.id
    assert len(await store.list_acks(matched=None, filing_id=None, limit=10)) == 1


async def test_concurrent_copies_of_one_ack_store_one(store_factory: Any) -> None:
    """Ten copies of one ack through two store instances: one stored, nine duplicates."""
    stores = [await store_factory(), await store_factory()]
    [c] = await deliver(stores[0], new())
    out: list[models.AckRecord] = []

    async def one(i: int) -> None:
        out.append(await record(stores[i % 2], ack_for(c.delivery_id)))

    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(one, i)
    assert sum(not r.duplicate for r in out) == 1
    assert len({r.id for r in out}) == 1
    history = [r.event for r in await stores[0].filing_history(c.filing.id)]
    assert history.count("ack.received") == 1
    assert audit.verify_rows(await all_audit(stores[1])).ok


async def test_unmatched_and_unsolicited_acks_are_history_only(store: base.Store) -> None:
    """An ack nobody matches is kept unmatched; an unsolicited one is history of its filing."""
    [c] = await deliver(store, new("REF-7"))
    lost = await record(store, ack_for("dlv_nobody"))
    assert (lost.matched, lost.effect) == (False, "unmatched")
    note = await record(
        store,
        ack_for(None, outcome="", unsolicited=True, filing_type="isf", reference="REF-7"),
    )
    assert (note.matched, note.effect, note.filing_id) == (True, "history", c.filing.id)
    assert await states(store, c.filing.id) == ["delivered"]
    unmatched = await store.list_acks(matched=False, filing_id=None, limit=10)
    assert [a.id for a in unmatched] == [lost.id]
    mine = await store.list_acks(matched=True, filing_id=c.filing.id, limit=10)
    assert [a.id for a in mine] == [note.id]


async def test_ack_by_reference_answers_the_oldest_waiting_delivery(store: base.Store) -> None:
    """filing_type + reference correlate to the oldest delivered delivery of that reference."""
    first, second = await deliver(store, new("R", ordering_key="a"), new("R", ordering_key="b"))
    rec = await record(store, ack_for(None, filing_type="isf", reference="R"))
    assert rec.delivery_id == first.delivery_id
    rec = await record(store, ack_for(None, filing_type="isf", reference="R", codes=["2"]))
    assert rec.delivery_id == second.delivery_id


async def test_rejecting_ack_blocks_the_ordering_key(store: base.Store) -> None:
    """A rejected ack makes the delivery rejected and blocks its key's successors."""
    [c] = await deliver(store, new("A", ordering_key="k"), hold=True)
    [later] = await accept(store, new("B", ordering_key="k"))
    rec = await record(store, ack_for(c.delivery_id, outcome="rejected"))
    assert rec.effect == "rejected"
    assert await states(store, c.filing.id) == ["rejected"]
    assert await states(store, later) == ["blocked"]
    assert await claim(store, at=T0 + 5 * S) == []


async def test_warning_ack_schedules_a_resend(store: base.Store) -> None:
    """A resend decision moves the delivery to waiting_retry at the decided time."""
    [c] = await deliver(store, new())
    await record(store, ack_for(c.delivery_id, outcome="warning"), at=T0 + 2 * S)
    view = await store.get_filing(c.filing.id)
    assert view is not None
    d = view.deliveries[0]
    assert d.state is models.DeliveryState.WAITING_RETRY
    assert d.next_attempt_at == T0 + 62 * S
    assert d.ack_due_at is None
    assert await claim(store, at=T0 + 61 * S) == []
    assert len(await claim(store, at=T0 + 62 * S)) == 1


async def test_held_delivery_keeps_its_ordering_key_until_acknowledged(store: base.Store) -> None:
    """hold_until_ack: a delivered predecessor holds the key; its ack releases the next one."""
    [c] = await deliver(store, new("A", ordering_key="k"), hold=True)
    [later] = await accept(store, new("B", ordering_key="k"))
    assert await claim(store, at=T0 + 2 * S) == []
    await record(store, ack_for(c.delivery_id))
    [next_] = await claim(store, at=T0 + 3 * S)
    assert next_.filing.id == later


async def test_delivered_without_hold_releases_the_key_at_once(store: base.Store) -> None:
    """Without hold_until_ack the successor is claimable as soon as the head is delivered."""
    await deliver(store, new("A", ordering_key="k"))
    [later] = await accept(store, new("B", ordering_key="k"))
    [next_] = await claim(store, at=T0 + 2 * S)
    assert next_.filing.id == later


async def test_overdue_acks_are_flagged_once_and_listable(store: base.Store) -> None:
    """flag_overdue flags each delivery past its deadline once; list_filings filters on it."""
    [late, _] = await deliver(store, new("A"), new("B", ordering_key="b"), due_s=None)
    await raw_set_ack_due(store, late.delivery_id, T0 + 30 * S)
    assert await store.flag_overdue(now=T0 + 29 * S) == []
    flagged = await store.flag_overdue(now=T0 + 30 * S)
    assert flagged == [(late.delivery_id, late.filing.id, "ace")]
    assert await store.flag_overdue(now=T0 + 99 * S) == []
    page = await store.list_filings(values.ListFilter(ack_overdue=True), limit=10, cursor=None)
    assert [f.id for f in page.items] == [late.filing.id]
    assert page.items[0].deliveries[0].ack_overdue
    others = await store.list_filings(values.ListFilter(ack_overdue=False), limit=10, cursor=None)
    assert late.filing.id not in [f.id for f in others.items]
    events = [r.event for r in await store.filing_history(late.filing.id)]
    assert events.count("delivery.ack_overdue") == 1


async def raw_set_ack_due(store: Any, delivery_id: str, when: datetime) -> None:
    from gateway.store import rows

    if hasattr(store, "_pool"):
        async with store._pool.acquire() as conn:
            await conn.execute(
                "UPDATE deliveries SET ack_due_at = $1 WHERE id = $2", rows.us(when), delivery_id
            )
    else:
        sql = f"UPDATE deliveries SET ack_due_at = {rows.us(when)} WHERE id = '{delivery_id}'"
        await store._writer.call(lambda: store._writer.conn.execute(sql))


async def test_ack_deadlines_extend_per_adapter(store: base.Store) -> None:
    """extend_ack_deadlines moves the open deadlines of one adapter (an outage pause)."""
    [c] = await deliver(store, new())
    assert await store.extend_ack_deadlines("ace", by_s=30, now=T0) == 1
    assert await store.extend_ack_deadlines("other", by_s=30, now=T0) == 0
    view = await store.get_filing(c.filing.id)
    assert view is not None
    assert view.deliveries[0].ack_due_at == T0 + 90 * S
    assert await store.flag_overdue(now=T0 + 60 * S) == []


async def test_resend_puts_a_delivered_filing_back_to_pending(store: base.Store) -> None:
    """resend_filing: delivered → pending, deadline and hold cleared, audited with the reason."""
    [c] = await deliver(store, new(), hold=True)
    action = await store.resend_filing(c.filing.id, actor=ACTOR, now=T0 + 5 * S, reason="lost")
    assert action.changed == [c.delivery_id]
    view = await store.get_filing(c.filing.id)
    assert view is not None
    assert view.deliveries[0].state is models.DeliveryState.PENDING
    assert view.deliveries[0].ack_due_at is None
    [again] = await claim(store, at=T0 + 5 * S)
    assert again.attempts == 1
    history = await store.filing_history(c.filing.id)
    assert history[-2].event == "delivery.resent"
    assert history[-2].details["reason"] == "lost"
    with pytest.raises(errors.Conflict):
        await store.resend_filing(c.filing.id, actor=ACTOR, now=T0, reason="again")
    with pytest.raises(errors.NotFound):
        await store.resend_filing("fil_missing", actor=ACTOR, now=T0, reason="x")


async def test_close_ack_stops_waiting_and_releases_the_hold(store: base.Store) -> None:
    """close_ack clears deadline and hold, notes who closed it, and frees the ordering key."""
    [c] = await deliver(store, new("A", ordering_key="k"), hold=True)
    [later] = await accept(store, new("B", ordering_key="k"))
    action = await store.close_ack(c.filing.id, actor=ACTOR, now=T0 + 5 * S, reason="seen")
    assert action.changed == [c.delivery_id]
    view = await store.get_filing(c.filing.id)
    assert view is not None
    d = view.deliveries[0]
    assert d.state is models.DeliveryState.DELIVERED
    assert d.ack_due_at is None
    assert d.ack == {
        "closed_by": "ci",
        "reason": "seen",
        "closed_at": "2025-03-04T12:00:05.000000Z",
    }
    [next_] = await claim(store, at=T0 + 6 * S)
    assert next_.filing.id == later
    with pytest.raises(errors.Conflict):
        await store.close_ack(later, actor=ACTOR, now=T0, reason="x")


# --- X12 control numbers ----------------------------------------------------------------


async def allocate(store: base.Store, claim_: values.Claim | None = None, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "sender": "ZZ:MAEU",
        "receiver": "ZZ:CBPACE",
        "usage": "T",
        "delivery_id": claim_.delivery_id if claim_ else "dlv_x",
        "filing_id": claim_.filing.id if claim_ else "fil_x",
        "attempt": 1,
        "now": T0,
        "token": claim_.token if claim_ else None,
    }
    return await store.allocate_controls(**{**args, **kw})


async def test_control_numbers_count_per_pair_and_usage(store: base.Store) -> None:
    """Each sender/receiver/usage has its own counters, starting at 1."""
    assert await allocate(store) == values.Controls(interchange=1, group=1)
    assert await allocate(store) == values.Controls(interchange=2, group=2)
    assert await allocate(store, usage="P") == values.Controls(interchange=1, group=1)
    assert await allocate(store, receiver="ZZ:OTHER") == values.Controls(interchange=1, group=1)


async def test_control_numbers_wrap_after_999999999(store: base.Store, backend: str) -> None:
    """After 999999999 the next number is 1."""
    await allocate(store)
    await raw(store, backend, f"UPDATE x12_counters SET last_interchange = {x12.MAX_CONTROL - 1}")
    assert (await allocate(store)).interchange == x12.MAX_CONTROL
    assert (await allocate(store)) == values.Controls(interchange=1, group=3)


async def test_allocation_is_fenced_by_the_lease_token(store: base.Store) -> None:
    """A stale token allocates nothing; the current one does and correlates the ack."""
    await accept(store, new())
    [c] = await claim(store, lease_s=1)
    [fresh] = await claim(store, at=T0 + 2 * S, owner="p2")
    assert await allocate(store, c) is None
    controls = await allocate(store, fresh)
    assert controls == values.Controls(interchange=1, group=1)
    assert await store.complete(fresh, now=T0 + 3 * S, receipt={}, ack_due_at=T0 + 60 * S)
    rec = await record(store, ack_for(None, group_control=1, usage="T", x12_sender="ZZ:MAEU"))
    assert rec.delivery_id == fresh.delivery_id
    assert rec.effect == "acknowledged"


async def test_concurrent_allocations_are_distinct_and_increasing(store_factory: Any) -> None:
    """200 concurrent allocations through two store instances: 1…200, each once, in order."""
    stores = [await store_factory(), await store_factory()]
    got: list[int] = []

    async def one(i: int) -> None:
        controls = await allocate(stores[i % 2], delivery_id=f"dlv_{i}")
        got.append(controls.interchange)

    async with anyio.create_task_group() as tg:
        for i in range(200):
            tg.start_soon(one, i)
    assert sorted(got) == list(range(1, 201))
    assert await allocate(stores[0]) == values.Controls(interchange=201, group=201)


# --- callbacks --------------------------------------------------------------------------


def with_callback(reference: str, **kw: Any) -> values.NewFiling:
    item = new(reference, **kw)
    return values.NewFiling(
        filing=item.filing.model_copy(update={"callback_url": URL}), adapters=item.adapters
    )


async def test_status_changes_queue_callbacks_in_order(store: base.Store) -> None:
    """Each final status change of a filing with a callback_url queues one event, in order."""
    [c] = await deliver(store, with_callback("A"))
    await deliver(store, new("B", ordering_key="b"))  # no callback_url: no event
    await record(store, ack_for(c.delivery_id), at=T0 + 2 * S)
    views = await store.list_callbacks(filing_id=None, state=None, limit=10)
    assert [(v.filing_id, v.event) for v in views] == [
        (c.filing.id, "filing.acknowledged"),
        (c.filing.id, "filing.delivered"),
    ]
    assert all(v.url == URL and v.state == "pending" for v in views)
    [first] = await store.claim_callbacks(owner="p1", now=T0 + 3 * S, lease_s=30, limit=5)
    assert first.id == views[1].id  # one in flight per filing: only the oldest event


async def test_callbacks_go_one_at_a_time_per_filing(store: base.Store) -> None:
    """A filing's next event is claimable only once the previous one is finished."""
    import json

    [c] = await deliver(store, with_callback("A"))
    await record(store, ack_for(c.delivery_id), at=T0 + 2 * S)
    [head] = await store.claim_callbacks(owner="p1", now=T0 + 3 * S, lease_s=30, limit=5)
    body = json.loads(head.body)
    assert body["type"] == "filing.delivered"
    assert body["data"]["previous_status"] == "in_progress"
    assert body["data"]["deliveries"][0]["id"] == c.delivery_id
    assert await store.claim_callbacks(owner="p2", now=T0 + 3 * S, lease_s=30, limit=5) == []
    assert await store.finish_callback(head, now=T0 + 4 * S, state="delivered")
    assert not await store.finish_callback(head, now=T0 + 4 * S, state="delivered")
    [nxt] = await store.claim_callbacks(owner="p2", now=T0 + 4 * S, lease_s=30, limit=5)
    assert json.loads(nxt.body)["type"] == "filing.acknowledged"
    done = await store.list_callbacks(filing_id=c.filing.id, state="delivered", limit=5)
    assert [v.id for v in done] == [head.id]
    assert done[0].delivered_at == T0 + 4 * S
    assert "callback.delivered" in [r.event for r in await store.filing_history(c.filing.id)]


async def test_callback_retry_release_and_fencing(store: base.Store) -> None:
    """waiting_retry waits for its time; release gives leases back; a stale token is refused."""
    await deliver(store, with_callback("A"))
    [cb] = await store.claim_callbacks(owner="p1", now=T0 + 2 * S, lease_s=30, limit=5)
    assert await store.finish_callback(
        cb, now=T0 + 2 * S, state="waiting_retry", at=T0 + 20 * S, error="503"
    )
    assert await store.next_callback_due() == T0 + 20 * S
    assert await store.claim_callbacks(owner="p1", now=T0 + 19 * S, lease_s=30, limit=5) == []
    [again] = await store.claim_callbacks(owner="p1", now=T0 + 20 * S, lease_s=30, limit=5)
    assert (again.attempts, again.id) == (1, cb.id)
    assert again.token > cb.token
    assert await store.release_callbacks(owner="p1", now=T0 + 21 * S) == 1
    assert not await store.finish_callback(again, now=T0 + 22 * S, state="delivered")
    [view] = await store.list_callbacks(filing_id=None, state="waiting_retry", limit=5)
    assert view.last_error == "503"
    assert view.next_attempt_at == T0 + 21 * S


async def test_concurrent_callback_claimers_never_hold_two_of_one_filing(
    store_factory: Any,
) -> None:
    """Two processes claiming at once never have two events of one filing in flight."""
    stores = [await store_factory(), await store_factory()]
    claims = await deliver(
        stores[0], *(with_callback(f"R{i}", ordering_key=f"k{i}") for i in range(6))
    )
    for c in claims:
        await record(stores[0], ack_for(c.delivery_id), at=T0 + 2 * S)
    got: list[values.CallbackClaim] = []

    async def claimer(i: int) -> None:
        got.extend(
            await stores[i % 2].claim_callbacks(owner=f"p{i}", now=T0 + 3 * S, lease_s=30, limit=20)
        )

    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(claimer, i)
    assert len(got) == 6
    assert len({c.filing_id for c in got}) == 6


# --- monitoring -------------------------------------------------------------------------


async def test_queue_stats_counts_and_oldest_waiting(store: base.Store) -> None:
    """queue_stats: deliveries by adapter and state, and the oldest waiting per adapter."""
    await accept(store, new("A"), new("B", adapters=("ace", "copy")))
    await claim(store)
    stats = await store.queue_stats()
    assert stats.counts == {"ace": {"in_flight": 2}, "copy": {"pending": 1}}
    assert stats.oldest_waiting == {"ace": T0, "copy": T0}
    assert stats.at_risk == 0


async def dead(store: base.Store, *items: values.NewFiling) -> list[values.Claim]:
    await accept(store, *items)
    claims = await claim(store)
    for c in claims:
        assert await store.kill(c, now=T0, error="boom")
    return claims


async def test_bulk_dry_run_changes_nothing(store: base.Store) -> None:
    """A dry run reports what a chunk would touch and leaves every row as it was."""
    [c] = await dead(store, new("A"))
    result = await store.bulk_action(
        "retry", values.BulkFilter(), actor=ACTOR, now=T0, reason="r", limit=10, dry_run=True
    )
    assert result.dry_run
    assert result.matched == 1
    assert result.deliveries == [(c.delivery_id, c.filing.id, "ace", "dead")]
    assert await states(store, c.filing.id) == ["dead"]


async def test_bulk_retry_revives_dead_and_unblocks_successors(store: base.Store) -> None:
    """Bulk retry: dead → pending, successors unblocked, audited per delivery and once."""
    [c] = await dead(store, new("A", ordering_key="k"))
    [later] = await accept(store, new("B", ordering_key="k"))
    assert await states(store, later) == ["blocked"]
    result = await store.bulk_action(
        "retry",
        values.BulkFilter(state=models.DeliveryState.DEAD),
        actor=ACTOR,
        now=T0,
        reason="fixed",
        limit=10,
    )
    assert (result.matched, [d[0] for d in result.deliveries]) == (1, [c.delivery_id])
    assert await states(store, c.filing.id) == ["pending"]
    assert await states(store, later) == ["pending"]
    trail = await all_audit(store)
    assert trail[-1].event == "operator.bulk_retry"
    assert trail[-1].details["changed"] == 1
    assert trail[-1].details["filter"]["state"] == "dead"
    retried = [r for r in trail if r.event == "delivery.retried"]
    assert retried[0].details == {
        "adapter": "ace",
        "reason": "fixed",
        "bulk": True,
        "request_id": "req-1",
    }
    assert "delivery.unblocked" in [r.event for r in trail]
    assert audit.verify_rows(trail).ok


async def test_bulk_cancel_in_chunks_and_leaves_in_flight_to_its_send(
    store: base.Store,
) -> None:
    """Bulk cancel works in chunks of `limit`, by filter, and never touches an in-flight
    delivery: its send decides, and is recorded."""
    await accept(store, *(new(f"R{i}", ordering_key=f"k{i}") for i in range(4)))
    [inflight] = await store.claim(owner="p1", now=T0, lease_s=30, limits={"ace": 1})
    flt = values.BulkFilter(adapter="ace", environment=models.Environment.CERT)
    first = await store.bulk_action("cancel", flt, actor=ACTOR, now=T0, reason="x", limit=2)
    assert first.matched == 3
    assert len(first.deliveries) == 2
    second = await store.bulk_action("cancel", flt, actor=ACTOR, now=T0, reason="x", limit=2)
    assert (second.matched, len(second.deliveries)) == (1, 1)
    assert inflight.delivery_id not in {d[0] for d in first.deliveries + second.deliveries}
    assert await store.complete(inflight, now=T0, receipt={"ok": True})
    page = await store.list_filings(values.ListFilter(), limit=10, cursor=None)
    assert sorted(f.status for f in page.items) == sorted(
        [models.FilingStatus.CANCELLED] * 3 + [models.FilingStatus.DELIVERED]
    )
    with pytest.raises(errors.InvalidInput):
        await store.bulk_action(
            "cancel",
            values.BulkFilter(state=models.DeliveryState.IN_FLIGHT),
            actor=ACTOR,
            now=T0,
            reason="x",
            limit=2,
        )
    none = values.BulkFilter(
        filing_type=models.FilingType("isf"), environment=models.Environment.PRODUCTION
    )
    assert (
        await store.bulk_action("cancel", none, actor=ACTOR, now=T0, reason="x", limit=2)
    ).matched == 0


async def test_bulk_refuses_a_state_the_action_cannot_start_from(store: base.Store) -> None:
    """Retrying pending deliveries is invalid input, not a silent no-op."""
    with pytest.raises(errors.InvalidInput):
        await store.bulk_action(
            "retry",
            values.BulkFilter(state=models.DeliveryState.PENDING),
            actor=ACTOR,
            now=T0,
            reason="x",
            limit=5,
        )


async def test_configured_redact_paths_apply_to_rejected_event_audit_rows(
    store_factory: Any,
) -> None:
    """The store's [audit] redact_paths mask audit details of every operation, on both backends."""
    from gateway.audit import redact

    store = await store_factory(redactor=redact.Redactor(["reason"]))
    event = rejected("ev-secret").model_copy(update={"reason": "tax id TOPSECRET-VALUE-1234"})
    assert await store.reject_event(event) is True
    [row] = [r for r in await all_audit(store) if r.event == "event.rejected"]
    assert "TOPSECRET" not in str(row.details)
    assert audit.verify_rows(await all_audit(store)).ok


async def test_a_resent_delivery_waits_for_a_later_one_of_its_key_in_flight(
    store: base.Store,
) -> None:
    """Resending A while B (same key, later) is being sent: A is not claimed until B's
    send is recorded — at most one in flight per (ordering key, adapter)."""
    a, b = await accept(store, new("A", ordering_key="K"), new("B", ordering_key="K"))
    [ca] = await store.claim(owner="p1", now=T0, lease_s=30, limits={"ace": 5})
    assert await store.complete(ca, now=T0, receipt={"n": 1})
    [cb] = await store.claim(owner="p1", now=T0, lease_s=30, limits={"ace": 5})
    assert cb.filing.id == b
    await store.resend_filing(a, actor=ACTOR, now=T0, reason="CBP asked")
    assert await store.claim(owner="p2", now=T0, lease_s=30, limits={"ace": 5}) == []
    assert await store.complete(cb, now=T0, receipt={"n": 2})
    [again] = await store.claim(owner="p2", now=T0, lease_s=30, limits={"ace": 5})
    assert again.filing.id == a and again.attempts == 1
