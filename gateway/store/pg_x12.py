"""X12 control numbers on PostgreSQL (schema v5), as ``sqlite_acks.allocate_controls``.

One ``INSERT … ON CONFLICT DO UPDATE … RETURNING``: the counter row's lock serializes
the allocations of a sender/receiver/usage across processes, so numbers are distinct
and increase in commit order (wrapping after 999999999). An allocation is fenced by a
share lock on the delivery row at the claim's token, and recorded with the delivery,
filing and attempt it is for (acks correlate through it).
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from gateway.encoding import x12
from gateway.store import base, pg_mixin, rows

Conn = asyncpg.Connection

_FENCE = (
    "SELECT 1 FROM deliveries WHERE id = $1 AND lease_token = $2 AND state = 'in_flight' FOR SHARE"
)
_TOP = x12.MAX_CONTROL
_ALLOCATE = f"""
INSERT INTO x12_counters AS c VALUES ($1, $2, $3, 1, 1)
ON CONFLICT (sender, receiver, usage) DO UPDATE SET
    last_interchange = CASE WHEN c.last_interchange >= {_TOP} THEN 1
                            ELSE c.last_interchange + 1 END,
    last_group = CASE WHEN c.last_group >= {_TOP} THEN 1 ELSE c.last_group + 1 END
RETURNING last_interchange, last_group
"""
_RECORD_ALLOCATION = """
INSERT INTO x12_allocations (sender, receiver, usage, interchange_control, group_control,
    delivery_id, filing_id, attempt, allocated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""


async def allocate_controls(
    conn: Conn,
    sender: str,
    receiver: str,
    usage: str,
    delivery_id: str,
    filing_id: str,
    attempt: int,
    now: datetime,
    token: int | None,
) -> base.Controls | None:
    """Next interchange and group numbers of a sender/receiver/usage; None if the lease is gone."""
    if token is not None and await conn.fetchval(_FENCE, delivery_id, token) is None:
        return None
    interchange, group = await conn.fetchrow(_ALLOCATE, sender, receiver, usage)
    await conn.execute(
        _RECORD_ALLOCATION,
        sender,
        receiver,
        usage,
        interchange,
        group,
        delivery_id,
        filing_id,
        attempt,
        rows.us(now),
    )
    return base.Controls(interchange=interchange, group=group)


class ControlsMixin(pg_mixin.Transactional):
    """The control-number method of ``PostgresStore``."""

    async def allocate_controls(
        self,
        *,
        sender: str,
        receiver: str,
        usage: str,
        delivery_id: str,
        filing_id: str,
        attempt: int,
        now: datetime,
        token: int | None = None,
    ) -> base.Controls | None:
        return await self._write(
            lambda c: allocate_controls(
                c, sender, receiver, usage, delivery_id, filing_id, attempt, now, token
            )
        )
