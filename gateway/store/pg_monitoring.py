"""Queue statistics on PostgreSQL (issue 7), as ``sqlite``'s. (Bulk retry/cancel is
written once in ``store/actions.py``.)
"""

from __future__ import annotations

import asyncpg

from gateway.store import base, pg_mixin, pg_sql, rows

Conn = asyncpg.Connection

_UNSETTLED = "('pending','in_progress','retrying','deferred','blocked')"
_COUNTS = "SELECT state, adapter, COUNT(*) FROM deliveries GROUP BY state, adapter"
_OLDEST = (
    f"SELECT adapter, MIN(created_at) FROM deliveries WHERE state IN {pg_sql.CLAIMABLE} "
    "GROUP BY adapter"
)
_AT_RISK = (
    f"SELECT COUNT(*) FROM filings f WHERE f.status IN {_UNSETTLED} AND f.at_risk_at IS NOT NULL"
)


async def _queue_stats(conn: Conn) -> base.QueueStats:
    counts: dict[str, dict[str, int]] = {}
    for state, adapter, n in await conn.fetch(_COUNTS):
        counts.setdefault(adapter, {})[state] = n
    oldest = {adapter: rows.dt(first) for adapter, first in await conn.fetch(_OLDEST)}
    at_risk = await conn.fetchval(_AT_RISK)
    conflicts = await conn.fetchval("SELECT COUNT(*) FROM deliveries WHERE ack_conflict")
    return base.QueueStats(
        counts=counts, oldest_waiting=oldest, at_risk=int(at_risk), ack_conflicts=int(conflicts)
    )


class MonitoringMixin(pg_mixin.Transactional):
    """The monitoring methods of ``PostgresStore``."""

    async def queue_stats(self) -> base.QueueStats:
        return await self._read(_queue_stats)
