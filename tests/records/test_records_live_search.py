"""A records search by reference reads the live store through its reference index, in any
spelling, at once however many live filings there are (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from gateway.clock import ManualClock
from gateway.service.records import Search
from gateway.store import base
from tests.records.test_records_wiring import make
from tests.store.test_contract import T0
from tests.store.test_contract_more import deliver, new


async def test_a_live_filing_is_found_by_reference_at_once(
    store: base.Store, tmp_path: Path
) -> None:
    claims = await deliver(store, *(new(f"Ref-Live {i:02d}") for i in range(30)))
    oldest = claims[0].filing.id
    recs = make(store, tmp_path, ManualClock(T0)).records
    for spelling in ("Ref-Live 00", "REFLIVE00", "ref-live-00"):
        items, _ = await recs.search(Search(terms={"reference": spelling}, limit=1))
        assert [i["id"] for i in items] == [oldest], spelling  # the first answer, no paging
    items, _ = await recs.search(
        Search(terms={"reference": "reflive00"}, filer_code="NOT-IT", limit=5)
    )
    assert items == []
    recs.close()
