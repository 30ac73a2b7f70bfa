"""The records wiring (issue 20 phase 2) on a real store, SQLite and PostgreSQL: the mover
moves finished filings into segments entered in the audit chain; search and show answer
over live and archive with one cursor; restore, holds, purge and verify; and ``recover``
settles what a killed round left."""

from __future__ import annotations

import base64
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway import config, errors
from gateway.audit import chain as audit
from gateway.clock import ManualClock
from gateway.records import errors as rerrors
from gateway.records import segment
from gateway.service import mover as mover_mod
from gateway.service import records_chain
from gateway.service.records import Records, Search
from gateway.store import archive, base
from tests.store.test_contract import ACTOR, T0, all_audit, new, raw
from tests.store.test_contract_more import ack_for, deliver, record

LATER = T0 + timedelta(days=30)  # cert filings live 7 days by default
KEY = base64.b64encode(os.urandom(32)).decode()


def make(store: base.Store, tmp_path: Path, clock: ManualClock, **records: Any) -> mover_mod.Mover:
    cfg = config.parse_config(
        {
            "gateway": {"store": f"sqlite:///{tmp_path}/unused.db"},
            "records": {"enabled": True, "dir": str(tmp_path / "records"), **records},
        }
    )
    recs = Records(store=store, cfg=cfg, clock=clock, environ={"EDIGW_RECORDS_KEYS": f"k1:{KEY}"})
    recs.open()
    return mover_mod.Mover(recs, store_url=cfg.gateway.store)


async def finished(store: base.Store, *refs: str) -> list[str]:
    claims = await deliver(store, *(new(r, payload={"bill_of_lading": f"BOL-{r}"}) for r in refs))
    for c in claims:
        await record(store, ack_for(c.delivery_id, codes=["A1"]))
    return [c.filing.id for c in claims]


async def pages(recs: Records, s: Search) -> list[list[dict[str, Any]]]:
    out, cursor = [], None
    while True:
        items, cursor = await recs.search(Search(**{**s.__dict__, "cursor": cursor}))
        out.append(items)
        if cursor is None:
            return out


async def test_a_round_moves_finished_filings_into_an_entered_segment(
    store: base.Store, tmp_path: Path
) -> None:
    ids = await finished(store, "R1", "R2")
    mover = make(store, tmp_path, ManualClock(LATER))
    assert await mover.round() == 2
    assert [await store.get_filing(i) for i in ids] == [None, None]
    (name,) = mover.records.storage.list()  # type: ignore[union-attr]
    live = await all_audit(store)
    assert not [r for r in live if r.filing_id in ids]  # their audit rows moved too
    rows = [r async for r in records_chain.Chain(store, mover.records).audit_rows()]
    moved = [r for r in rows if r.event == "records.archived"]
    assert moved[0].details["segment"] == name and moved[0].details["records"] == 2
    assert moved[0].details["audit_rows"] == len([r for r in rows if r.filing_id in ids]) > 0
    assert audit.verify_rows(rows).ok
    assert (await mover.records.verify(deep=True)).passed
    shown = await mover.records.show(ids[0])
    assert shown["where"] == "archive" and shown["record"]["filing"]["reference"] == "R1"
    assert await mover.round() == 0  # nothing left to move


async def test_a_filing_still_in_its_live_period_stays(store: base.Store, tmp_path: Path) -> None:
    ids = await finished(store, "R1")
    mover = make(store, tmp_path, ManualClock(T0 + timedelta(days=3)))
    assert await mover.round() == 0
    assert await store.get_filing(ids[0]) is not None


async def test_search_pages_live_then_archive_with_one_cursor(
    store: base.Store, tmp_path: Path
) -> None:
    old = await finished(store, "A1", "A2", "A3")
    mover = make(store, tmp_path, ManualClock(LATER))
    assert await mover.round() == 3
    young = await finished(store, "L1", "L2", "L3")
    got = await pages(mover.records, Search(limit=2))
    flat = [i["id"] for p in got for i in p]
    assert sorted(flat) == sorted(old + young) and len(flat) == 6
    assert {i["where"] for p in got for i in p if i["id"] in old} == {"archive"}
    by_bill = await pages(mover.records, Search(terms={"bill_of_lading": "bol-a2"}, limit=5))
    assert [i["id"] for p in by_bill for i in p] == [old[1]]
    by_live_bill = await pages(mover.records, Search(terms={"bill_of_lading": "BOL-L3"}))
    assert [i["id"] for p in by_live_bill for i in p] == [young[2]]
    by_ack = await pages(mover.records, Search(terms={"ack_code": "a1"}, limit=50))
    assert len([i for p in by_ack for i in p]) == 6


async def test_bad_search_parameters_name_the_field(store: base.Store, tmp_path: Path) -> None:
    recs = make(store, tmp_path, ManualClock(LATER)).records
    for search, field in (
        (Search(limit=0), "limit"),
        (Search(cursor="bm9wZQ"), "cursor"),
        (Search(terms={"Bad Field": "x"}), "Bad Field"),
        (Search(terms={"reference": " - "}), "reference"),
    ):
        with pytest.raises(rerrors.BadQuery) as caught:
            await recs.search(search)
        assert caught.value.field == field


async def test_restore_brings_a_record_back_once(store: base.Store, tmp_path: Path) -> None:
    (fid,) = await finished(store, "R1")
    mover = make(store, tmp_path, ManualClock(LATER))
    assert await mover.round() == 1
    await mover.records.restore(fid, reason="CBP request 42", actor=ACTOR)
    assert (await store.get_filing(fid)) is not None
    assert (await mover.records.show(fid))["where"] == "live"
    found = [i for p in await pages(mover.records, Search(terms={"reference": "R1"})) for i in p]
    assert [(i["id"], i["where"]) for i in found] == [(fid, "live")]
    with pytest.raises(errors.Conflict):
        await mover.records.restore(fid, reason="again", actor=ACTOR)
    assert (await all_audit(store))[-1].event == "records.restored"
    # archived again later: the index keeps both copies, the newest is the one shown
    mover.records.clock = ManualClock(LATER + timedelta(days=30))
    assert await mover.round() == 1
    assert (await mover.records.show(fid))["where"] == "archive"


async def test_verify_flags_a_flipped_byte(store: base.Store, tmp_path: Path) -> None:
    await finished(store, "R1")
    mover = make(store, tmp_path, ManualClock(LATER))
    assert await mover.round() == 1
    (name,) = mover.records.storage.list()  # type: ignore[union-attr]
    path = tmp_path / "records" / "segments" / name
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))
    report = await mover.records.verify()
    assert not report.passed and report.of("altered") == [name]


async def test_purge_waits_for_retention_and_holds(store: base.Store, tmp_path: Path) -> None:
    await finished(store, "R1")
    clock = ManualClock(LATER)
    mover = make(store, tmp_path, clock)
    assert await mover.round() == 1
    assert await mover.records.purge(dry_run=True, actor=ACTOR) == []  # cert: 90 days in all
    clock.set(T0 + timedelta(days=200))
    hold = await mover.records.place_hold("reference", "R1", "litigation", ACTOR)
    assert await mover.records.purge(dry_run=False, actor=ACTOR) == []
    await mover.records.release_hold(hold, "settled", ACTOR)
    (gone,) = await mover.records.purge(dry_run=False, actor=ACTOR)
    assert mover.records.storage.list() == []  # type: ignore[union-attr]
    assert (await mover.records.verify()).passed
    events = [r.event for r in await all_audit(store)]
    assert events[-3:] == ["records.hold_placed", "records.hold_released", "records.purged"]
    assert gone["records"] == 1


async def test_recover_deletes_a_segment_whose_filings_are_still_live(
    store: base.Store, tmp_path: Path
) -> None:
    """A kill between the put and the commit leaves an extra segment: recover deletes it."""
    ids = await finished(store, "R1")
    mover = make(store, tmp_path, ManualClock(LATER))
    seqs = await store.live_seqs(ids)
    records = await store.archive_batch(list(seqs.values()))
    stray = segment.write_segment(mover.records.storage, records, created_at=LATER)  # type: ignore[arg-type]
    assert (await mover.recover())["deleted"] == [stray.name]
    assert mover.records.storage.list() == []  # type: ignore[union-attr]
    assert await mover.round() == 1


async def test_recover_indexes_an_entered_segment_the_index_lacks(
    store: base.Store, tmp_path: Path
) -> None:
    """A kill after the commit, before the index learnt it: recover indexes it."""
    ids = await finished(store, "R1")
    mover = make(store, tmp_path, ManualClock(LATER))
    seqs = await store.live_seqs(ids)
    records = await store.archive_batch(list(seqs.values()))
    written = segment.write_segment(mover.records.storage, records, created_at=LATER)  # type: ignore[arg-type]
    info = {"name": written.name, "sha256": written.sha256, "first_id": ids[0], "last_id": ids[0]}
    stamps = {int(r["filing"]["seq"]): archive.stamp_of(r) for r in records}
    assert await store.archive_enter(info, stamps, ACTOR, LATER)
    assert (await mover.records.search(Search(terms={"reference": "R1"})))[0] == []
    assert (await mover.recover())["indexed"] == [written.name]
    (hit,), _ = await mover.records.search(Search(terms={"reference": "R1"}))
    assert hit["where"] == "archive"


async def test_verify_flags_a_segment_list_that_disagrees_with_the_chain(
    store: base.Store, tmp_path: Path, backend: str
) -> None:
    """record_segments edited behind the gateway's back: the chain still says otherwise."""
    await finished(store, "R1")
    mover = make(store, tmp_path, ManualClock(LATER))
    assert await mover.round() == 1
    assert (await mover.records.verify()).passed
    (name,) = mover.records.storage.list()  # type: ignore[union-attr]
    await raw(store, backend, "UPDATE record_segments SET purged_at = 1")
    report = await mover.records.verify()
    assert report.of("altered") == [name]
    assert "the audit chain enters" in report.problems[-1].message


class RacingStore:
    """The real store; right after the mover's batch read, ``race`` changes a filing."""

    def __init__(self, inner: base.Store, race: Any) -> None:
        self.inner = inner
        self.race = race

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def archive_batch(self, seqs: list[int]) -> list[dict[str, Any]]:
        records = await self.inner.archive_batch(seqs)
        await self.race()
        self.race = _nothing
        return records


async def _nothing() -> None:
    return None


async def test_a_filing_changed_mid_round_stays_live_and_its_segment_goes(
    store: base.Store, tmp_path: Path
) -> None:
    """The check before the delete: a change between read and commit aborts the move."""
    claims = await deliver(store, new("R1"))
    (fid,) = [c.filing.id for c in claims]

    async def late_ack() -> None:
        await record(store, ack_for(claims[0].delivery_id), at=LATER)

    clock = ManualClock(LATER)
    mover = make(RacingStore(store, late_ack), tmp_path, clock)  # type: ignore[arg-type]
    assert await mover.round() == 0
    assert await store.get_filing(fid) is not None
    assert mover.records.storage.list() == []  # type: ignore[union-attr]
    assert await store.archive_segments() == []
    assert await mover.round() == 0  # it changed at LATER: live for 7 days more
    clock.set(LATER + timedelta(days=8))
    assert await mover.round() == 1  # then it moves as it is now
    shown = await mover.records.show(fid)
    assert shown["record"]["deliveries"][0]["state"] == "acknowledged"
