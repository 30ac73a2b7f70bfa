"""Per-minute figures for the dashboard's charts (issue 21), read from the timestamps
the store keeps anyway: nothing extra is written on the hot path and the figures
survive a restart. Both reads start from the ``filings_received`` index, so their cost
follows the filings accepted in the window, not the table (see ``gateway/api/charts``).
"""

from __future__ import annotations

from datetime import datetime

from gateway.store import rows
from gateway.store.sansio import Body, Cx, q

MINUTE_US = 60_000_000


def accepted(cx: Cx, since: datetime) -> Body[dict[int, int]]:
    """Filings accepted per minute (minute since the epoch → count) since ``since``."""
    found = yield q("all", "series_accepted", rows.us(since))
    return {int(minute): int(n) for minute, n in found}


def delivered(cx: Cx, since: datetime, accepted_since: datetime) -> Body[list[tuple[int, int]]]:
    """(delivered minute, accept→deliver µs) of each delivery made since ``since`` of a
    filing accepted since ``accepted_since``."""
    found = yield q("all", "series_delivered", rows.us(accepted_since), rows.us(since))
    return [(int(d) // MINUTE_US, int(d) - int(r)) for d, r in found]
