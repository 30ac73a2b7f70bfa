"""A records search merges live and archived filings newest first by time of receipt, on
SQLite and PostgreSQL: a page of one holds the newest of the two sides, and following the
cursor walks both in order, each filing once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from gateway.clock import ManualClock
from gateway.service.records import Search
from gateway.store import base
from tests.records.test_records_wiring import LATER, make, pages
from tests.store.test_contract import T0, accept, new
from tests.store.test_contract_more import ack_for, deliver, record

H = timedelta(hours=1)


async def test_live_and_archived_filings_come_newest_first_across_both(
    store: base.Store, tmp_path: Path
) -> None:
    claims = await deliver(store, new("OLD-A1", at=T0 - 3 * H), new("OLD-A2", at=T0 - H))
    for c in claims:
        await record(store, ack_for(c.delivery_id, codes=["A1"]))
    a1, a2 = (c.filing.id for c in claims)
    mover = make(store, tmp_path, ManualClock(LATER))
    assert await mover.round() == 2
    # still live (pending: an adapter nothing claims), received between the archived ones
    (l1,) = await accept(store, new("LIVE-1", at=T0 - 2 * H, adapters=("copy",)))
    (l2,) = await accept(store, new("LIVE-2", at=T0, adapters=("copy",)))
    for limit in (1, 2, 3, 50):
        got = await pages(mover.records, Search(limit=limit))
        flat = [(i["id"], i["where"]) for p in got for i in p]
        assert flat == [(l2, "live"), (a2, "archive"), (l1, "live"), (a1, "archive")], limit
        assert all(len(p) <= limit for p in got)
    first, cursor = await mover.records.search(Search(limit=2))
    again, _ = await mover.records.search(Search(limit=2, cursor=cursor))
    assert [i["id"] for i in first + again] == [l2, a2, l1, a1]  # the cursor resumes exactly
    by_ref = await pages(mover.records, Search(terms={"reference": "live-1"}, limit=1))
    assert [i["id"] for p in by_ref for i in p] == [l1]
