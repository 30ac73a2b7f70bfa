"""Row 20: the records mover of a real ``serve`` process is SIGKILLed at each point of a
round — after reading its batch, after putting the segment (before the transaction), after
the transaction (before the index learnt it) — and then runs to the end. After every kill
and at the end: each filing is either live or in exactly one entered segment (nothing lost,
nothing duplicated), its archived record equals its rows before the move, its audit rows
are live iff it is (the transaction that enters a segment also moves them out), ``audit
verify`` passes over live rows and entered segments, and at the end ``records verify
--deep`` passes too.

The kills come from the mover itself (``EDIGW_RECORDS_CRASH_AT``): an event in its round,
not a timer, so they land in the same place on any machine.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from gateway.records import segment, storage
from gateway.service import mover
from gateway.store import sqlite
from tests.conftest import free_port
from tests.records.test_records_wiring import finished
from tests.reliability import relkit

FILINGS = 12
BATCH = 5  # three segments in all: every kill point meets a full round


def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(
        f"""
[gateway]
listen = "127.0.0.1:0"
store = "sqlite:///{tmp_path / "gw.db"}"
log_format = "json"
log_level = "info"

[auth]
mode = "none"

[adapters.ace]
type = "filedrop"
directory = "{tmp_path / "outbox"}"

[[routes]]
filing_types = ["*"]
adapters = ["ace"]

[records]
enabled = true
dir = "{tmp_path / "records"}"
interval = "1h"
batch_filings = {BATCH}
"""
    )
    return path


async def prepare(db: Path) -> dict[str, dict[str, Any]]:
    """FILINGS finished filings of March 2025 (past their live period); their records."""
    store = sqlite.SqliteStore(db)
    await store.open()
    try:
        await store.migrate()
        ids = []
        for start in range(0, FILINGS, 4):  # a claim takes a few at a time
            ids += await finished(store, *(f"CRASH-{i}" for i in range(start, start + 4)))
        assert len(ids) == FILINGS
        seqs = await store.live_seqs(ids)
        records = await store.archive_batch(sorted(seqs.values()))
        return {r["filing"]["id"]: r for r in records}
    finally:
        await store.close()


def where_is_everything(tmp_path: Path) -> tuple[set[str], dict[str, list[str]], list[str]]:
    """(live filing ids, {filing id: entered segments holding it}, segment files not entered)."""
    with sqlite3.connect(tmp_path / "gw.db") as db:
        live = {r[0] for r in db.execute("SELECT id FROM filings")}
        entered = dict(db.execute("SELECT name, sha256 FROM record_segments"))
    files = storage.DirectoryStorage(tmp_path / "records" / "segments")
    holding: dict[str, list[str]] = {}
    for name, sha in entered.items():
        for rec in segment.open_segment(files, name, expected_sha256=sha):
            holding.setdefault(rec["filing"]["id"], []).append(name)
    return live, holding, sorted(set(files.list()) - set(entered))


def nothing_lost_nothing_twice(tmp_path: Path, before: dict[str, dict[str, Any]]) -> int:
    """Every filing live xor in exactly one entered segment; the archived copy is exact."""
    live, holding, _ = where_is_everything(tmp_path)
    assert live.isdisjoint(holding), "a filing is live and archived"
    assert live | set(holding) == set(before), "a filing is lost"
    assert all(len(v) == 1 for v in holding.values()), f"archived twice: {holding}"
    files = storage.DirectoryStorage(tmp_path / "records" / "segments")
    with sqlite3.connect(tmp_path / "gw.db") as db:
        audited = {r[0] for r in db.execute("SELECT DISTINCT filing_id FROM audit")}
    assert audited >= live, "a live filing lost its audit rows"
    assert audited.isdisjoint(holding), "an archived filing's audit rows are still live"
    for fid, (name,) in holding.items():
        rec = segment.open_segment(files, name).record(fid)
        assert {k: v for k, v in rec.items() if k != "audit"} == {
            k: v for k, v in before[fid].items() if k != "audit"
        }
        assert [a["seq"] for a in rec["audit"]] == [a["seq"] for a in before[fid]["audit"]]
    return len(holding)


def cli(cfg: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", *argv, "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(relkit.ROOT), "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize("order", [("after_put", "after_enter", "after_read")])
async def test_a_killed_mover_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, order: tuple[str, ...], figure: Any
) -> None:
    before = await prepare(tmp_path / "gw.db")
    cfg = config(tmp_path)
    log = tmp_path / "serve.log"
    archived = []
    for point in order:
        serve = relkit.Serve(cfg, free_port(), log, env={mover.CRASH_ENV: point})
        serve.start()
        assert serve.proc is not None
        code = await anyio.to_thread.run_sync(lambda p=serve.proc: p.wait(timeout=120))
        assert code == -signal.SIGKILL, serve.log_tail()
        archived.append(nothing_lost_nothing_twice(tmp_path, before))
        _, _, extra = where_is_everything(tmp_path)
        assert len(extra) == (point == "after_put")  # put, never entered: recovery's to delete
        audited = cli(cfg, "audit", "verify")  # live rows + entered segments' rows: one chain
        assert audited.returncode == 0, f"after {point}: {audited.stdout + audited.stderr}"
    # one clean run: recovery settles what the kills left, the rounds move the rest
    serve = relkit.Serve(cfg, free_port(), log, env={mover.CRASH_ENV: ""})
    serve.start()
    try:
        with anyio.fail_after(120):
            while where_is_everything(tmp_path)[0]:
                assert serve.alive, serve.log_tail()
                await anyio.sleep(0.05)
    finally:
        assert serve.terminate() == 0, serve.log_tail()
    assert nothing_lost_nothing_twice(tmp_path, before) == FILINGS
    assert where_is_everything(tmp_path)[2] == [], "an extra segment survived"
    verified = cli(cfg, "records", "verify", "--deep", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    audited = cli(cfg, "audit", "verify")
    assert audited.returncode == 0, audited.stdout + audited.stderr
    # CRASH-2 went in the segment entered just before a kill: indexed by the next start
    found = cli(cfg, "records", "search", "--reference", "CRASH-2", "--json")
    assert '"where": "archive"' in found.stdout, found.stdout + found.stderr
    figure(
        "row20",
        f"records mover SIGKILLed at {', '.join(order)}: archived after each kill "
        f"{archived}; {FILINGS}/{FILINGS} filings archived once at the end, verify passes",
    )
