"""On PostgreSQL one gateway moves records at a time: the mover holds a session advisory
lock while it runs, and gives it back when it stops."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from gateway import config
from gateway.clock import ManualClock
from gateway.service import mover
from tests.store.conftest import pg_schema_dsn as pg_schema_dsn  # the fixture
from tests.store.test_contract import T0


@pytest.mark.postgres
async def test_the_mover_holds_its_lock_while_it_runs(pg_schema_dsn: str, tmp_path: Path) -> None:
    cfg = config.parse_config(
        {"gateway": {"store": pg_schema_dsn}, "records": {"enabled": True, "dir": str(tmp_path)}}
    )
    mine = mover.build(cfg, None, ManualClock(T0), {}, 0)  # type: ignore[arg-type]
    assert mine is not None
    other = await asyncpg.connect(pg_schema_dsn)
    try:
        async with mine._lock():
            taken = await other.fetchval("SELECT pg_try_advisory_lock($1, $2)", *mover.LOCK_MOVER)
            assert taken is False  # another gateway's mover would wait
        assert await other.fetchval("SELECT pg_try_advisory_lock($1, $2)", *mover.LOCK_MOVER)
    finally:
        await other.close()
        mine.records.close()
