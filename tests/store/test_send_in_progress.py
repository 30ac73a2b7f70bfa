"""A send in progress outlives the late record of an older send of its delivery (the
lifecycle model's history of 2026-12-03, ``tests/lifecycle/test_late_send_then_cancel.py``).

A claim's lease ran out (``p1``), the delivery was claimed again (``p2``, lease live) and
``p2`` is sending when ``p1``'s send is reported: the delivery is ``delivered`` (the
receiver has it), and ``p2``'s lease stays on the row. While it lasts an operator's cancel
(single and bulk), retry and resend are refused as for an ``in_flight`` delivery, and a
resend an ack asks for waits for it; ``p2``'s report, or its lease running out unrenewed,
ends it. Same tests on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from gateway import errors, models, values
from gateway.rules import acks as ackrules
from gateway.store import base, rows
from tests.store.test_contract import ACTOR, T0, accept, claim, new, states

S = timedelta(seconds=1)
#: p2's lease: claimed at T0 + 2 s for 30 s
P2_LEASE_END = T0 + 32 * S


def resubmit_in_5s(
    ack: models.Ack, target: ackrules.AckTarget, now: datetime
) -> ackrules.AckDecision:
    """Every ack asks for a new transmission in 5 s (an E90 would)."""
    return ackrules.AckDecision(
        "resend_scheduled", models.DeliveryState.WAITING_RETRY, at=now + 5 * S, error="E90"
    )


async def late_send_then_resubmit(store: base.Store) -> tuple[str, str, values.Claim]:
    """p1's send reported after p2 claimed the delivery (p2 sending), then an ack asking
    for a resend: the delivery waits for a retry, p2's send still on the wire. Returns
    (the filing, the next filing of its ordering key, p2's claim)."""
    [fid] = await accept(store, new("A", ordering_key="k"))
    [stale] = await claim(store, lease_s=1)
    [live] = await claim(store, at=T0 + 2 * S, owner="p2")
    assert live.token > stale.token
    assert not await store.complete(stale, now=T0 + 3 * S, receipt={"by": "p1"})
    assert await states(store, fid) == ["delivered"]
    [nxt] = await accept(store, new("B", ordering_key="k"), now=T0 + 3 * S)
    ack = models.Ack(delivery_id=live.delivery_id, outcome=models.AckOutcome.REJECTED)
    record = await store.record_ack(ack, decide=resubmit_in_5s, actor=ACTOR, now=T0 + 4 * S)
    assert record.effect == "resend_scheduled"
    assert await states(store, fid) == ["waiting_retry"]
    return fid, nxt, live


async def cancel_refused(store: base.Store, fid: str, at: datetime) -> errors.Refused:
    with pytest.raises(errors.Refused) as info:
        await store.cancel_filing(fid, actor=ACTOR, now=at)
    return info.value


async def test_a_cancel_waits_for_a_send_still_in_progress(store: base.Store) -> None:
    """The history the model found: the cancel is refused (409 naming p2's lease end), a
    bulk cancel skips the delivery, the key's next filing is not sent, and the retry the
    ack asked for waits for p2's lease; p2's send, reported late, delivers it."""
    fid, nxt, live = await late_send_then_resubmit(store)
    refused = await cancel_refused(store, fid, T0 + 5 * S)
    assert refused.code == "delivery_in_flight"
    assert refused.details["deliveries"] == [live.delivery_id]
    assert refused.details["retry_after"] == rows.iso(P2_LEASE_END)
    bulk = await store.bulk_action(
        "cancel",
        values.BulkFilter(state=models.DeliveryState.WAITING_RETRY),
        actor=ACTOR,
        now=T0 + 5 * S,
        reason="test",
        limit=10,
    )
    assert bulk.deliveries == []
    assert await states(store, fid) == ["waiting_retry"]
    # neither the key's next filing nor the resend (due at T0 + 9 s) goes before p2's end
    assert await claim(store, at=T0 + 10 * S, owner="p3") == []
    assert not await store.complete(live, now=T0 + 11 * S, receipt={"by": "p2"})
    assert await states(store, fid) == ["delivered"]
    events = [r.event for r in await store.filing_history(fid)]
    assert events.count("delivery.sent") == 2 and "delivery.cancelled" not in events
    [then] = await claim(store, at=T0 + 12 * S, owner="p3")
    assert then.filing.id == nxt


async def test_a_lease_kept_renews_and_runs_out_unrenewed(store: base.Store) -> None:
    """p2's heartbeat keeps its send in progress past the lease's first end; once p2
    stops renewing and the lease runs out, p2 is presumed dead and the cancel goes."""
    fid, _, live = await late_send_then_resubmit(store)
    renewed = await store.renew(
        owner="p2", tokens={live.delivery_id: live.token}, until=T0 + 50 * S
    )
    assert renewed == 1
    refused = await cancel_refused(store, fid, T0 + 40 * S)
    assert refused.details["retry_after"] == rows.iso(T0 + 50 * S)
    action = await store.cancel_filing(fid, actor=ACTOR, now=T0 + 50 * S)
    assert action.changed == [live.delivery_id]
    assert await states(store, fid) == ["cancelled"]


async def test_a_failed_send_of_the_lease_kept_ends_it(store: base.Store) -> None:
    """p2's send fails: the lease it kept ends with its report (fenced, nothing else
    changes), and the cancel goes at once."""
    fid, _, live = await late_send_then_resubmit(store)
    assert not await store.schedule_retry(live, now=T0 + 6 * S, at=T0 + 7 * S, error="503")
    assert await states(store, fid) == ["waiting_retry"]
    await store.cancel_filing(fid, actor=ACTOR, now=T0 + 7 * S)
    assert await states(store, fid) == ["cancelled"]


async def test_resend_and_retry_wait_for_the_send_in_progress(store: base.Store) -> None:
    """Right after the late record (delivered, p2 sending) a resend is refused as for an
    in-flight delivery; p2's send reported (sent again: history) ends it."""
    [fid] = await accept(store, new("A", ordering_key="k"))
    [stale] = await claim(store, lease_s=1)
    [live] = await claim(store, at=T0 + 2 * S, owner="p2")
    assert not await store.complete(stale, now=T0 + 3 * S, receipt={"by": "p1"})
    with pytest.raises(errors.Refused) as info:
        await store.resend_filing(fid, actor=ACTOR, now=T0 + 4 * S, reason="asked")
    assert info.value.code == "delivery_in_flight"
    assert not await store.complete(live, now=T0 + 5 * S, receipt={"by": "p2"})
    events = [r.event for r in await store.filing_history(fid)]
    assert events[-2:] == ["delivery.sent", "delivery.sent_again"]
    await store.resend_filing(fid, actor=ACTOR, now=T0 + 6 * S, reason="asked")
    assert await states(store, fid) == ["pending"]


async def test_a_late_send_still_fences_a_lease_that_ran_out(store: base.Store) -> None:
    """When the newer claim's lease has run out too, nobody is presumed sending: the late
    record fences it as before (its renewal finds nothing) and a resend goes at once."""
    [fid] = await accept(store, new("A", ordering_key="k"))
    [stale] = await claim(store, lease_s=1)
    [gone] = await claim(store, at=T0 + 2 * S, owner="p2", lease_s=1)
    assert not await store.complete(stale, now=T0 + 5 * S, receipt={"by": "p1"})
    assert await store.renew(owner="p2", tokens={gone.delivery_id: gone.token}, until=T0) == 0
    await store.resend_filing(fid, actor=ACTOR, now=T0 + 6 * S, reason="asked")
    assert await states(store, fid) == ["pending"]
