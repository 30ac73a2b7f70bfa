"""Rejected inbound events on PostgreSQL (schema v4), as ``sqlite_inbound.reject_event``.

An event is kept once per (source, event_id): a redelivered message or a re-dropped
file inserts nothing (``ON CONFLICT DO NOTHING``) and writes no second audit row.
Accept's side of v4 (``filings.source_event_id``) is in ``pg_ops.accept``.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from gateway import models
from gateway.store import base, logic, pg_audit, pg_mixin, rows

Conn = asyncpg.Connection

_R_COLS = "seq, id, source, origin, event_id, reason, details, body, content_type, received_at"
_INSERT = f"""
INSERT INTO rejected_events ({_R_COLS.removeprefix("seq, ")})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (source, event_id) WHERE event_id IS NOT NULL DO NOTHING
RETURNING seq
"""


async def _reject(conn: Conn, event: models.RejectedEvent) -> bool:
    seq = await conn.fetchval(
        _INSERT,
        event.id,
        event.source,
        event.origin,
        event.event_id,
        event.reason,
        json.dumps(event.details, default=str),
        event.body,
        event.content_type,
        rows.us(event.received_at),
    )
    if seq is None:
        return False
    trail = pg_audit.Trail(event.received_at)
    trail.add(
        "event.rejected",
        actor=base.Actor(name=f"source:{event.source}"),
        details=logic.rejected_details(event),
    )
    await trail.flush(conn)
    return True


async def _list(
    conn: Conn, source: str | None, limit: int, cursor: str | None
) -> tuple[list[models.RejectedEvent], str | None]:
    where: list[str] = []
    params: list[Any] = []
    if cursor is not None:
        params.append(rows.decode_cursor(cursor))
        where.append(f"seq < ${len(params)}")
    if source is not None:
        params.append(source)
        where.append(f"source = ${len(params)}")
    sql = f"SELECT {_R_COLS} FROM rejected_events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY seq DESC LIMIT ${len(params) + 1}"
    found = list(await conn.fetch(sql, *params, limit + 1))
    more = len(found) > limit
    found = found[:limit]
    items = [rows.rejected_event(r) for r in found]
    return items, (rows.encode_cursor(found[-1][0]) if more and found else None)


class InboundMixin(pg_mixin.Transactional):
    """The rejected-event methods of ``PostgresStore``."""

    async def reject_event(self, event: models.RejectedEvent) -> bool:
        """Keep an inbound event that could not become a filing; False if already kept."""
        return await self._write(lambda c: _reject(c, event))

    async def list_rejected(
        self, *, source: str | None, limit: int, cursor: str | None
    ) -> tuple[list[models.RejectedEvent], str | None]:
        return await self._read(lambda c: _list(c, source, limit, cursor))
