"""The store's records-archive methods (issue 20) on SQLite and PostgreSQL: a batch read
with every row of its filings, the check-and-delete that enters a segment (refused when a
filing moved since it was read), restore, holds and purge marks, each audited."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gateway.audit import chain as audit
from gateway.store import archive, base
from tests.store.test_contract import ACTOR, T0, all_audit, new
from tests.store.test_contract_more import ack_for, deliver, record

LATER = T0 + timedelta(days=30)
SEGMENT = {"name": "seg-1.seg", "sha256": "ab" * 32, "first_id": "", "last_id": ""}


async def finished(store: base.Store, *refs: str) -> list[Any]:
    """Filings delivered and acknowledged (an ack row each), read back as candidates."""
    claims = await deliver(store, *(new(r) for r in refs))
    for c in claims:
        await record(store, ack_for(c.delivery_id))
    return await store.archive_candidates(LATER, 0, 100)


async def test_a_batch_holds_every_row_of_its_filings(store: base.Store) -> None:
    """Filing, deliveries, acks and audit rows come with each record."""
    found = await finished(store, "R1", "R2")
    assert [r[4] for r in found] == ["R1", "R2"]
    records = await store.archive_batch([r[0] for r in found])
    assert [rec["filing"]["reference"] for rec in records] == ["R1", "R2"]
    for rec in records:
        assert len(rec["deliveries"]) == 1 and rec["deliveries"][0]["state"] == "acknowledged"
        assert len(rec["acks"]) == 1
        assert {a["event"] for a in rec["audit"]} >= {"filing.accepted"}


async def test_unfinished_or_recent_filings_are_not_candidates(store: base.Store) -> None:
    """Pending R2 never; delivered R1 once its last change is before the cutoff."""
    await deliver(store, new("R1"))
    await store.accept([new("R2")], actor=ACTOR, now=T0)
    assert await store.archive_candidates(T0, 0, 100) == []
    assert [r[4] for r in await store.archive_candidates(LATER, 0, 100)] == ["R1"]


async def test_enter_deletes_the_rows_and_chains_the_segment(store: base.Store) -> None:
    found = await finished(store, "R1")
    rec = (await store.archive_batch([found[0][0]]))[0]
    stamps = {found[0][0]: archive.stamp_of(rec)}
    assert await store.archive_enter(SEGMENT, stamps, ACTOR, LATER)
    assert await store.get_filing(rec["filing"]["id"]) is None
    assert await store.archive_batch([found[0][0]]) == []
    rows = await all_audit(store)
    assert rows[-1].event == "records.archived"
    assert rows[-1].details["sha256"] == SEGMENT["sha256"]
    assert audit.verify_rows(rows).ok
    assert [s[0] for s in await store.archive_segments()] == ["seg-1.seg"]


async def test_enter_refuses_when_a_filing_changed_since_the_read(store: base.Store) -> None:
    found = await finished(store, "R1")
    rec = (await store.archive_batch([found[0][0]]))[0]
    stale = archive.stamp_of(rec)
    stamps = {found[0][0]: (stale[0] - 1, stale[1])}
    assert not await store.archive_enter(SEGMENT, stamps, ACTOR, LATER)
    assert await store.get_filing(rec["filing"]["id"]) is not None
    assert await store.archive_segments() == []


async def test_restore_puts_every_row_back(store: base.Store) -> None:
    found = await finished(store, "R1")
    rec = (await store.archive_batch([found[0][0]]))[0]
    assert await store.archive_enter(SEGMENT, {found[0][0]: archive.stamp_of(rec)}, ACTOR, LATER)
    await store.archive_restore(rec, "seg-1.seg", "CBP asked", ACTOR, LATER)
    again = (await store.archive_batch([found[0][0]]))[0]
    assert {k: v for k, v in again.items() if k != "audit"} == {
        k: v for k, v in rec.items() if k != "audit"
    }
    rows = await all_audit(store)
    assert rows[-1].event == "records.restored" and rows[-1].details["reason"] == "CBP asked"


async def test_holds_are_placed_released_and_audited(store: base.Store) -> None:
    hold_id = await store.place_hold("reference", "R1", "litigation", ACTOR, T0)
    ((got, kind, value, _, _, by, released, _),) = await store.record_holds()
    assert (got, kind, value, by, released) == (hold_id, "reference", "R1", "ci", None)
    await store.release_hold(hold_id, "settled", ACTOR, LATER)
    ((*_, released, released_by),) = await store.record_holds()
    assert released is not None and released_by == "ci"
    events = [r.event for r in await all_audit(store)]
    assert events[-2:] == ["records.hold_placed", "records.hold_released"]


async def test_a_purge_mark_is_audited_once(store: base.Store) -> None:
    found = await finished(store, "R1")
    rec = (await store.archive_batch([found[0][0]]))[0]
    assert await store.archive_enter(SEGMENT, {found[0][0]: archive.stamp_of(rec)}, ACTOR, LATER)
    assert await store.archive_purged("seg-1.seg", SEGMENT["sha256"], 1, ACTOR, LATER)
    assert not await store.archive_purged("seg-1.seg", SEGMENT["sha256"], 1, ACTOR, LATER)
    assert (await store.archive_segments())[0][6] is not None
    assert (await all_audit(store))[-1].event == "records.purged"
