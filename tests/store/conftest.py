"""Fixtures of the store tests: a ``store`` on each backend, and fresh PostgreSQL schemas.

PostgreSQL tests read ``EDIGW_TEST_POSTGRES_DSN``. Without it they skip locally; with
``EDIGW_REQUIRE_SERVICES=1`` (CI) they fail instead. Each test gets its own schema,
selected through the DSN's ``search_path`` query parameter (asyncpg passes unknown DSN
parameters to the server as settings), and dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from gateway.audit import redact
from gateway.store import base, postgres, sqlite
from tests.conftest import service_missing

DSN_ENV = "EDIGW_TEST_POSTGRES_DSN"


def postgres_dsn() -> str:
    """The test database's DSN, or skip (fail on CI) when there is none."""
    dsn = os.environ.get(DSN_ENV)
    if dsn:
        return dsn
    service_missing(f"{DSN_ENV} is not set (PostgreSQL tests; .ci/run sets it)")
    raise AssertionError("unreachable")


def with_schema(dsn: str, schema: str) -> str:
    parts = urlsplit(dsn)
    query = "&".join(q for q in (parts.query, f"search_path={schema}") if q)
    return urlunsplit(parts._replace(query=query))


@contextlib.asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    """A DSN whose connections use a fresh, empty schema (dropped afterwards)."""
    dsn = postgres_dsn()
    schema = f"edigw_t_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        yield with_schema(dsn, schema)
    finally:
        # the audit triggers refuse TRUNCATE and DELETE, not DROP
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


@pytest.fixture
async def pg_schema_dsn() -> AsyncIterator[str]:
    """A DSN on a fresh PostgreSQL schema."""
    async with fresh_schema() as dsn:
        yield dsn


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store_factory(backend: str, tmp_path: Path) -> AsyncIterator[object]:
    """Opens (and later closes) stores on ONE database: two "processes" sharing it."""
    opened: list[base.Store] = []
    async with contextlib.AsyncExitStack() as stack:
        dsn = await stack.enter_async_context(fresh_schema()) if backend == "postgres" else None

        async def make(*, redactor: redact.Redactor | None = None) -> base.Store:
            store: base.Store
            if dsn is not None:
                store = postgres.PostgresStore(dsn, retry_s=3.0, redactor=redactor)
            else:
                store = sqlite.SqliteStore(tmp_path / "gateway.db", redactor=redactor)
            await store.open()
            opened.append(store)
            await store.migrate()
            return store

        try:
            yield make
        finally:
            for store in reversed(opened):
                await store.close()


@pytest.fixture
async def store(store_factory: object) -> base.Store:
    """A migrated, empty store on the parametrized backend."""
    return await store_factory()  # type: ignore[operator,no-any-return]
