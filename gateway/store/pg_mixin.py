"""The base of ``PostgresStore``'s feature mixins (``pg_inbound``, ``pg_acks``,
``pg_callbacks``, ``pg_monitoring``): what they need from the store, typed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

T = TypeVar("T")


class Transactional:
    """Runs a body in one transaction (``_write``) or on a pooled connection (``_read``),
    with ``PostgresStore``'s retries and error translation."""

    async def _write(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        raise NotImplementedError  # pragma: no cover - PostgresStore provides it

    async def _read(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        raise NotImplementedError  # pragma: no cover - PostgresStore provides it
