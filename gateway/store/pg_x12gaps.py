"""X12 control-number gaps on PostgreSQL: the two queries of ``x12gaps``, one snapshot."""

from __future__ import annotations

import asyncpg

from gateway.store import pg_mixin, x12gaps


async def x12_gaps(conn: asyncpg.Connection, q: x12gaps.GapQuery) -> x12gaps.X12GapReport:
    groups_sql, gaps_sql, groups_params, gaps_params = x12gaps.queries(x12gaps.POSTGRES, q)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        groups = await conn.fetch(x12gaps.numbered(groups_sql), *groups_params)
        gaps = await conn.fetch(x12gaps.numbered(gaps_sql), *gaps_params)
    return x12gaps.report(list(groups), list(gaps), q.limit)


class X12GapsMixin(pg_mixin.Transactional):
    """The control-number gaps report of ``PostgresStore``."""

    async def x12_gaps(self, q: x12gaps.GapQuery) -> x12gaps.X12GapReport:
        return await self._read(lambda c: x12_gaps(c, q))
