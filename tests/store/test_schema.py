"""The schema's migrations (sql/<dialect>/migrations.sql) and migrate/schema_version."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from gateway.store import base, postgres, sansio, schema, sqlite
from tests.store.conftest import fresh_schema


def test_each_dialect_has_every_migration_up_to_the_schema_version() -> None:
    """Both files hold migrations 1..SCHEMA_VERSION, in order, none empty."""
    for dialect in ("sqlite", "postgres"):
        migrations = schema.MIGRATIONS[dialect]
        assert [v for v, _ in migrations] == list(range(1, schema.SCHEMA_VERSION + 1))
        assert all(script.strip() for _, script in migrations)


def test_split_sqlite_keeps_trigger_bodies_and_drops_comments_between_statements() -> None:
    """A trigger ends at its END; comment lines between statements are not statements."""
    script = (
        "-- a comment\n"
        "CREATE TABLE t (a INTEGER);\n"
        "\n"
        "-- another\n"
        "CREATE TRIGGER t_no BEFORE DELETE ON t\n"
        "    BEGIN SELECT RAISE(ABORT, 'no'); END;\n"
        "CREATE INDEX t_a ON t (a)\n"
        "    WHERE a > 0"
    )
    assert schema.split_sqlite(script) == [
        "CREATE TABLE t (a INTEGER);",
        "CREATE TRIGGER t_no BEFORE DELETE ON t\n    BEGIN SELECT RAISE(ABORT, 'no'); END;",
        "CREATE INDEX t_a ON t (a)\n    WHERE a > 0",
    ]


@contextlib.asynccontextmanager
async def opened(backend: str, tmp_path: Path, count: int) -> AsyncIterator[list[base.Store]]:
    """``count`` stores, not migrated, on one empty database of ``backend``."""
    async with contextlib.AsyncExitStack() as stack:
        dsn = await stack.enter_async_context(fresh_schema()) if backend == "postgres" else None
        stores: list[base.Store] = []
        for _ in range(count):
            store: base.Store = (
                postgres.PostgresStore(dsn, retry_s=3.0)
                if dsn is not None
                else sqlite.SqliteStore(tmp_path / "gateway.db")
            )
            await store.open()
            stack.push_async_callback(store.close)
            stores.append(store)
        yield stores


async def test_an_empty_database_is_at_version_zero_until_migrated(
    backend: str, tmp_path: Path
) -> None:
    """schema_version() reads 0 where no version table exists yet; migrate() creates it."""
    async with opened(backend, tmp_path, 1) as [store]:
        assert await store.schema_version() == 0
        assert await store.migrate() == schema.SCHEMA_VERSION
        assert await store.schema_version() == schema.SCHEMA_VERSION


async def test_processes_migrating_at_once_apply_each_migration_once(
    backend: str, tmp_path: Path
) -> None:
    """Three stores migrating one empty database together all end at SCHEMA_VERSION
    (PostgreSQL: the advisory lock makes the later ones wait, then find nothing to do)."""
    async with opened(backend, tmp_path, 3) as stores:
        results: list[int] = []

        async def run(store: base.Store) -> None:
            results.append(await store.migrate())

        async with anyio.create_task_group() as tg:
            for store in stores:
                tg.start_soon(run, store)
        assert results == [schema.SCHEMA_VERSION] * 3
        assert await stores[0].schema_version() == schema.SCHEMA_VERSION


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_a_gap_in_the_migrations_is_refused_at_load(
    dialect: sansio.Dialect, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration file whose versions do not run 1..SCHEMA_VERSION fails loudly."""
    monkeypatch.setattr(schema, "SCHEMA_VERSION", schema.SCHEMA_VERSION + 1)
    with pytest.raises(ValueError, match="not 1 to SCHEMA_VERSION"):
        schema.load(dialect)
