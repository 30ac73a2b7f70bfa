"""SQLite's partial indexes on the deliveries' states (migration 12): the states said with
= and <> (no IN list to build on every row written), and every query that walks one still
walks it. SQLite uses a partial index only when the query's WHERE says the index's WHERE
as written, so a query rewritten apart from its index silently loses it: these plans say so.
A gateway's database has no ANALYZE statistics, so the plans are read on one without them.
The callback claim's plan is here too: it scanned every callback ever queued on each poll.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.store import sansio, schema, sqlite
from tests.store.test_contract import accept, claim, new

#: the SQLite indexes whose WHERE names delivery states
STATE_INDEXES = ("deliveries_claim", "deliveries_due", "deliveries_fair", "deliveries_order")

#: query → the (table alias, index) pairs its plan must search by
WALKS = {
    "claim": [("d", "deliveries_fair"), ("e", "deliveries_order"), ("l", "deliveries_order")],
    "claim_due": [("d", "deliveries_claim"), ("e", "deliveries_order"), ("l", "deliveries_order")],
    "claim_probe": [("e", "deliveries_order"), ("l", "deliveries_order")],
    "fair_state": [("d", "deliveries_fair")],
    "accept_deliveries": [("b", "deliveries_order")],
    "reblock_key": [("deliveries", "deliveries_order")],
    "next_due": [("deliveries", "deliveries_due")],
    # told which index (INDEXED BY): the planner would rather scan every event in seq order
    "callback_claim": [("c", "callbacks_due"), ("p", "callbacks_filing")],
}


@pytest.fixture
async def db(tmp_path: Path) -> sqlite3.Connection:
    """A migrated, empty gateway database (no ANALYZE statistics)."""
    path = tmp_path / "gateway.db"
    store = sqlite.SqliteStore(path)
    await store.open()
    try:
        assert await store.migrate() == schema.SCHEMA_VERSION
    finally:
        await store.close()
    return sqlite3.connect(path)


def _compiled(conn: sqlite3.Connection, how: str, text: str) -> list[tuple[object, ...]]:
    """``how`` (EXPLAIN, EXPLAIN QUERY PLAN) of ``text``, its parameters all NULL."""
    params = (None,) * text.count("?")  # ?N counted once per use: enough, and sqlite3 says so
    while True:
        try:
            return conn.execute(f"{how} {text}", params).fetchall()
        except sqlite3.ProgrammingError:  # fewer distinct numbers than uses
            params = params[:-1]


@pytest.mark.parametrize("name", sorted(WALKS))
def test_each_query_on_the_delivery_states_still_walks_its_partial_index(
    db: sqlite3.Connection, name: str
) -> None:
    """EXPLAIN QUERY PLAN: each query searches the partial index its WHERE was written for
    (a query saying ``state IN (…)`` against an index saying ``state = … OR …`` does not)."""
    plan = [
        str(row[3]) for row in _compiled(db, "EXPLAIN QUERY PLAN", sansio.ready("sqlite")[name])
    ]
    for alias, index in WALKS[name]:
        assert any(
            line.startswith(f"SEARCH {alias} USING ") and f"INDEX {index}" in line for line in plan
        ), (name, alias, index, plan)


def test_writing_a_delivery_builds_no_throwaway_btree_for_an_index_where(
    db: sqlite3.Connection,
) -> None:
    """EXPLAIN: an insert, and an update of the state, compile to no OpenEphemeral (the
    b-tree SQLite builds for an IN list of three or more, each time a row is written, for
    each index that names the states so)."""
    for text in (
        "UPDATE deliveries SET state = ?1, available_at = ?2, lease_owner = ?3 WHERE seq = ?4",
        "INSERT INTO deliveries (id, filing_seq, filing_id, adapter, ordering_key, state, "
        "available_at, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7)",
    ):
        ops = [str(row[1]) for row in _compiled(db, "EXPLAIN", text)]
        assert "OpenEphemeral" not in ops, text
    for name in STATE_INDEXES:
        [(sql,)] = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchall()
        assert " IN " not in sql.upper(), sql


async def test_a_v11_database_upgrades_and_its_deliveries_enter_the_new_indexes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database at v11 with a backlog migrates to v12: its indexes are rebuilt on the new
    WHERE over the rows already there, and the claim takes the backlog in the same order."""
    path = tmp_path / "gateway.db"
    with monkeypatch.context() as patched:
        patched.setitem(schema.MIGRATIONS, "sqlite", schema.MIGRATIONS["sqlite"][:11])
        old = sqlite.SqliteStore(path)
        await old.open()
        try:
            assert await old.migrate() == 11
            ids = await accept(old, *(new(f"REF-{i}", ordering_key=f"K{i % 2}") for i in range(4)))
        finally:
            await old.close()
    store = sqlite.SqliteStore(path)
    await store.open()
    try:
        assert await store.migrate() == 12
        conn = sqlite3.connect(path)
        for name in STATE_INDEXES:
            [(sql,)] = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,))
            assert " IN " not in sql.upper(), sql
            [(entries,)] = conn.execute(
                "SELECT sum(ncell) FROM dbstat WHERE name = ? AND pagetype = 'leaf'", (name,)
            )
            assert entries == 4, name  # every pending delivery, none missed by the rebuild
        conn.close()
        taken = [c.filing.id for c in await claim(store)]
        assert taken == ids[:2]  # the head of each key (K0, K1), in acceptance order
    finally:
        await store.close()
