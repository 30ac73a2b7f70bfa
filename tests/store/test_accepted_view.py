"""The 202's body is built while writing (``rows.accepted_view``, no read back): it must
be the filing exactly as a read shows it, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway import ids, models, values
from gateway.rules import normalize
from gateway.store import base

T0 = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)


async def test_the_accepted_view_is_the_filing_as_a_read_shows_it(store: base.Store) -> None:
    """Every field the accept's view holds (the optional ones set) equals get_filing's."""
    event = models.FilingEvent(
        filing_type=models.FilingType("isf"),
        environment=models.Environment("cert"),
        reference="REF-VIEW",
        filer_code="ABC",
        idempotency_key="key-view",
        ordering_key="key-order",
        due_by=T0 + timedelta(hours=4),
        payload={"ref": "REF-VIEW"},
        metadata={"desk": "ocean"},
    )
    filing = normalize.normalize(event, filing_id=ids.new_id("fil"), received_at=T0)
    item = values.NewFiling(filing=filing, adapters=["ace", "other"])
    [result] = await store.accept([item], actor=values.SYSTEM, now=T0)
    assert result.created and result.view is not None
    assert result.view == await store.get_filing(result.filing_id)
