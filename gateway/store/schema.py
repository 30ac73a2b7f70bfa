"""The schema's version and its migrations, for both backends.

The migrations are SQL, written once per dialect: ``sql/<dialect>/migrations.sql`` holds
one ``-- name: migration_N`` block per version (read with the named queries), so a reader
compares the dialects migration by migration. ``migrate`` applies the ones the database
lacks, in order, all in one transaction, and records the version after each; a failure
leaves the database where it was.

Several gateway processes may migrate one PostgreSQL database at once (a rollout starts
``migrate`` and ``serve`` side by side): the body takes the ``LOCK_MIGRATE`` advisory lock
first and creates the version table with ``IF NOT EXISTS`` under it, so the second process
waits, then finds the schema current and applies nothing. SQLite has one writer, so the
lock is a no-op there. A database newer than this gateway (``SCHEMA_VERSION``) is
refused: its columns and meanings are unknown here, and running on them could corrupt it.

sqlite3 runs one statement per call, so on SQLite a migration is split into statements;
PostgreSQL takes each migration as one script (one round trip; its functions' bodies keep
their semicolons).
"""

from __future__ import annotations

import sqlite3
from typing import get_args

from gateway import errors
from gateway.store.sansio import Body, Cx, Dialect, Lock, q, queries, sql

#: the highest migration version
SCHEMA_VERSION = 12

#: serializes migrating processes (PostgreSQL advisory lock; 'edgw', 2)
LOCK_MIGRATE = (0x6564_6777, 2)

_CURRENT = "SELECT COALESCE(MAX(version), 0) FROM schema_version"


def load(dialect: Dialect) -> list[tuple[int, str]]:
    """The ``migration_N`` blocks of ``sql/<dialect>/migrations.sql``, in version order."""
    found = sorted(
        (int(name.removeprefix("migration_")), text)
        for name, text in queries(dialect).items()
        if name.startswith("migration_")
    )
    versions = [version for version, _ in found]
    if versions != list(range(1, SCHEMA_VERSION + 1)):
        raise ValueError(
            f"sql/{dialect}/migrations.sql has migrations {versions}, "
            f"not 1 to SCHEMA_VERSION ({SCHEMA_VERSION})"
        )
    return found


#: each dialect's migrations; ``migrate`` reads them from here (a test shortens a list)
MIGRATIONS: dict[Dialect, list[tuple[int, str]]] = {d: load(d) for d in get_args(Dialect)}


def split_sqlite(script: str) -> list[str]:
    """A migration's statements, each ending on a line where SQLite's own tokenizer says it
    is complete (a trigger at its ``END;``: its body's semicolons stay). Comment lines
    between statements are dropped; SQLite would keep a comment inside a CREATE in
    ``sqlite_master``."""
    out: list[str] = []
    buf: list[str] = []
    for line in script.splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("--")):
            continue
        buf.append(line)
        joined = "\n".join(buf).strip()
        if sqlite3.complete_statement(joined):
            out.append(joined)
            buf = []
    if buf:
        out.append("\n".join(buf).strip())
    return out


def schema_version(cx: Cx) -> Body[int]:
    """The database's schema version; 0 before the first migration."""
    if not (yield q("val", "schema_version_exists")):
        return 0
    return int((yield sql("val", _CURRENT)))


def migrate(cx: Cx) -> Body[int]:
    """Bring the schema up to the last migration; returns the version it is at."""
    yield Lock(LOCK_MIGRATE)
    yield q("run", "schema_version_table")
    current = int((yield sql("val", _CURRENT)))
    if current > SCHEMA_VERSION:
        raise errors.StoreError(
            f"the database schema is v{current}, newer than this gateway knows "
            f"(v{SCHEMA_VERSION}); upgrade edi-gateway"
        )
    for version, script in MIGRATIONS[cx.dialect]:
        if version <= current:
            continue
        for statement in split_sqlite(script) if cx.dialect == "sqlite" else [script]:
            yield sql("run", statement)
        yield sql("run", "DELETE FROM schema_version")
        yield sql("run", "INSERT INTO schema_version VALUES ($1)", version)
        current = version
    return current
