"""Status callbacks on PostgreSQL (schema v5): a durable outbox, as ``sqlite_callbacks``.

``enqueue_callback`` runs inside whatever transaction changed a filing's status (from
``pg_ops.refresh_status``), so an event is queued exactly when the change commits.
Claims lock the head event of each filing ``FOR UPDATE SKIP LOCKED``: an event is a
head only while no earlier event of its filing is open (pending, waiting_retry or
in_flight), so two processes never send two events of one filing at once, and a
filing's events go out in order. Claims are leased and fenced like deliveries.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from gateway import ids, models
from gateway.store import base, logic, pg_audit, pg_mixin, rows

Conn = asyncpg.Connection

#: filing statuses a callback is sent for
CALLBACK_STATUSES = frozenset({"delivered", "acknowledged", "rejected", "dead", "cancelled"})
_OPEN = "('pending','waiting_retry','in_flight')"

_FILING = "SELECT id, filing_type, environment, reference, callback_url FROM filings WHERE seq = $1"
_DELIVERIES = "SELECT id, adapter, state, ack FROM deliveries WHERE filing_seq = $1 ORDER BY seq"
_INSERT = """
INSERT INTO callbacks (id, filing_id, url, event, body, state, available_at, created_at,
    updated_at)
VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6, $6)
"""
_CLAIM = f"""
WITH heads AS (
    SELECT c.seq FROM callbacks c
    WHERE c.state IN {_OPEN} AND c.available_at <= $1
      AND NOT EXISTS (
        SELECT 1 FROM callbacks p
        WHERE p.filing_id = c.filing_id AND p.seq < c.seq AND p.state IN {_OPEN})
    ORDER BY c.seq LIMIT $2
    FOR UPDATE OF c SKIP LOCKED
)
UPDATE callbacks u SET state = 'in_flight', lease_owner = $3,
    lease_token = u.lease_token + 1, available_at = $4, updated_at = $1
FROM heads WHERE u.seq = heads.seq
RETURNING u.seq, u.id, u.filing_id, u.url, u.body, u.attempts, u.lease_token, u.created_at
"""
_FINISH = """
UPDATE callbacks SET state = $1, attempts = attempts + 1, available_at = $2,
    last_error = $3, lease_owner = NULL, updated_at = $4,
    delivered_at = CASE WHEN $1 = 'delivered' THEN $4 ELSE delivered_at END
WHERE id = $5 AND lease_token = $6 AND state = 'in_flight'
RETURNING attempts, event
"""
_RELEASE = """
UPDATE callbacks SET state = CASE WHEN attempts = 0 THEN 'pending' ELSE 'waiting_retry' END,
    lease_owner = NULL, lease_token = lease_token + 1, available_at = $1, updated_at = $1
WHERE lease_owner = $2 AND state = 'in_flight'
"""
_NEXT_DUE = f"SELECT MIN(available_at) FROM callbacks WHERE state IN {_OPEN}"
_LIST = (
    "SELECT id, filing_id, url, event, state, attempts, available_at, last_error, "
    "created_at, delivered_at FROM callbacks"
)


async def enqueue_callback(
    conn: Conn, filing_seq: int, previous: str, status: str, now_us: int
) -> None:
    """Queue a status event for the filing's callback_url, in the caller's transaction."""
    if status not in CALLBACK_STATUSES:
        return
    f = await conn.fetchrow(_FILING, filing_seq)
    event, body = logic.callback_event(
        f, await conn.fetch(_DELIVERIES, filing_seq), previous, status, now_us
    )
    await conn.execute(
        _INSERT,
        ids.new_id("evt"),
        f[0],
        f[4],
        event,
        json.dumps(body, separators=(",", ":")),
        now_us,
    )


async def _claim(
    conn: Conn, owner: str, now: datetime, lease_s: float, limit: int
) -> list[base.CallbackClaim]:
    now_us = rows.us(now)
    until = rows.us(now + timedelta(seconds=lease_s))
    taken = sorted(await conn.fetch(_CLAIM, now_us, limit, owner, until), key=lambda r: r[0])
    return [
        base.CallbackClaim(
            id=r[1],
            filing_id=r[2],
            url=r[3],
            body=r[4],
            attempts=r[5],
            token=r[6],
            created_at=rows.dt(r[7]),
        )
        for r in taken
    ]


async def _finish(
    conn: Conn,
    claim: base.CallbackClaim,
    now: datetime,
    state: str,
    at: datetime | None,
    error: str | None,
) -> bool:
    now_us = rows.us(now)
    row = await conn.fetchrow(
        _FINISH,
        state,
        rows.us(at) if at is not None else now_us,
        error,
        now_us,
        claim.id,
        claim.token,
    )
    if row is None:
        return False
    if state in ("delivered", "dead"):
        trail = pg_audit.Trail(now)
        trail.add(
            f"callback.{state}",
            actor=base.SYSTEM,
            filing_id=claim.filing_id,
            details={"callback_id": claim.id, "event": row[1], "attempts": row[0], "error": error},
        )
        await trail.flush(conn)
    return True


async def _list(
    conn: Conn, filing_id: str | None, state: str | None, limit: int
) -> list[models.CallbackView]:
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("filing_id", filing_id), ("state", state)):
        if value is not None:
            params.append(value)
            where.append(f"{column} = ${len(params)}")
    sql = _LIST + (" WHERE " + " AND ".join(where) if where else "")
    sql += f" ORDER BY seq DESC LIMIT ${len(params) + 1}"
    return [
        models.CallbackView(
            id=r[0],
            filing_id=r[1],
            url=r[2],
            event=r[3],
            state=r[4],
            attempts=r[5],
            next_attempt_at=rows.dt(r[6]) if r[4] in ("pending", "waiting_retry") else None,
            last_error=r[7],
            created_at=rows.dt(r[8]),
            delivered_at=rows.dt_or_none(r[9]),
        )
        for r in await conn.fetch(sql, *params, limit)
    ]


class CallbacksMixin(pg_mixin.Transactional):
    """The callback outbox methods of ``PostgresStore``."""

    async def claim_callbacks(
        self, *, owner: str, now: datetime, lease_s: float, limit: int
    ) -> list[base.CallbackClaim]:
        return await self._write(lambda c: _claim(c, owner, now, lease_s, limit))

    async def finish_callback(
        self,
        claim: base.CallbackClaim,
        *,
        now: datetime,
        state: str,
        at: datetime | None = None,
        error: str | None = None,
    ) -> bool:
        return await self._write(lambda c: _finish(c, claim, now, state, at, error))

    async def release_callbacks(self, *, owner: str, now: datetime) -> int:
        status = await self._write(lambda c: c.execute(_RELEASE, rows.us(now), owner))
        return int(status.rsplit(" ", 1)[-1])

    async def next_callback_due(self) -> datetime | None:
        value = await self._read(lambda c: c.fetchval(_NEXT_DUE))
        return None if value is None else rows.dt(value)

    async def list_callbacks(
        self, *, filing_id: str | None, state: str | None, limit: int
    ) -> list[models.CallbackView]:
        return await self._read(lambda c: _list(c, filing_id, state, limit))
