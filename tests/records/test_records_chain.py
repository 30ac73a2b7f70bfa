"""Archiving moves the filings' audit rows out of the live chain (issue 20): ``audit verify``
then proves the chain over live rows and the archive's (``gateway.service.records_chain``),
on SQLite and PostgreSQL. A flipped byte in a segment, a segment missing, a forged
segment row and a deleted live row each fail naming what broke; prune, restore, purge and
export keep working."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from gateway.audit import chain as audit
from gateway.audit import verify as audit_verify
from gateway.cli import main as cli
from gateway.clock import ManualClock
from gateway.records import segment
from gateway.service import mover as mover_mod
from gateway.service import records_chain
from gateway.store import base
from tests.records.test_records_wiring import KEY, LATER, finished, make
from tests.store.test_contract import ACTOR, T0, accept, all_audit, new, raw


async def walk(store: base.Store, mover: mover_mod.Mover) -> audit.VerifyResult:
    chain = records_chain.Chain(store, mover.records)
    await chain.load()
    result, _ = await audit_verify.walk(chain, [], purged=chain.purged)
    return result


async def archived(store: base.Store, tmp_path: Path, *refs: str) -> tuple[Any, list[str]]:
    ids = await finished(store, *refs)
    mover = make(store, tmp_path, ManualClock(LATER), batch_filings=2)
    while await mover.round():
        pass
    return mover, ids


def segment_path(tmp_path: Path, mover: mover_mod.Mover, n: int = 0) -> Path:
    return tmp_path / "records" / "segments" / sorted(mover.records.storage.list())[n]  # type: ignore[union-attr]


async def test_verify_proves_live_and_archived_rows_as_one_chain(
    store: base.Store, tmp_path: Path
) -> None:
    mover, ids = await archived(store, tmp_path, "A1", "A2", "A3")
    await finished(store, "L1")  # live rows after the archived ones
    live = await all_audit(store)
    assert not [r for r in live if r.filing_id in ids]
    assert not audit.verify_rows(live).ok  # the live table alone has gaps
    result = await walk(store, mover)
    assert result.ok, result.reason
    assert result.rows == live[-1].seq  # every row from 1 to the head, none twice
    assert len(mover.records.storage.list()) == 2  # type: ignore[union-attr]


async def test_a_flipped_byte_in_a_segment_fails_naming_it(
    store: base.Store, tmp_path: Path
) -> None:
    mover, _ = await archived(store, tmp_path, "A1")
    path = segment_path(tmp_path, mover)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    result = await walk(store, mover)
    assert not result.ok and path.name in (result.reason or "")
    assert result.first_bad_seq == 1  # A1's rows were the chain's first


async def test_a_missing_segment_fails_naming_it(store: base.Store, tmp_path: Path) -> None:
    mover, _ = await archived(store, tmp_path, "A1", "A2", "A3")
    path = segment_path(tmp_path, mover, 1)
    path.unlink()
    result = await walk(store, mover)
    assert not result.ok and path.name in (result.reason or "") and "missing" in result.reason


async def test_a_segment_row_rewritten_with_its_hash_fails_at_that_row(
    store: base.Store, backend: str, tmp_path: Path
) -> None:
    """A forger who rewrites a segment (a changed audit detail) and lists its new hash
    still breaks the chain: the row's own hash no longer matches."""
    mover, _ = await archived(store, tmp_path, "A1")
    path = segment_path(tmp_path, mover)
    seg = segment.open_segment(mover.records.storage, path.name, keyring=mover.records.keyring)  # type: ignore[arg-type]
    (rec,) = list(seg)
    victim = rec["audit"][1]
    victim["details"] = json.dumps({**json.loads(victim["details"]), "adapter": "forged"})
    path.unlink()
    forged = segment.write_segment(
        mover.records.storage,
        [rec],
        created_at=T0,
        keyring=mover.records.keyring,  # type: ignore[arg-type]
    )
    await raw(
        store,
        backend,
        f"UPDATE record_segments SET name = '{forged.name}', sha256 = '{forged.sha256}'",
    )
    mover.records.index.remove(path.name)  # type: ignore[union-attr]
    result = await walk(store, mover)
    assert not result.ok and result.first_bad_seq == victim["seq"]
    assert result.reason == "row content does not match its hash"


async def test_a_deleted_live_row_fails(store: base.Store, backend: str, tmp_path: Path) -> None:
    mover, _ = await archived(store, tmp_path, "A1")
    (lid,) = await finished(store, "L1")
    gone = [r for r in await all_audit(store) if r.filing_id == lid][1].seq
    await raw(store, backend, "INSERT INTO audit_prune_guard (id) VALUES (1)")
    await raw(store, backend, f"DELETE FROM audit WHERE seq = {gone}")
    await raw(store, backend, "DELETE FROM audit_prune_guard")
    result = await walk(store, mover)
    assert not result.ok and result.first_bad_seq == gone
    assert "missing" in (result.reason or "")


async def test_prune_after_archiving_keeps_the_chain_verifiable(
    store: base.Store, tmp_path: Path
) -> None:
    """The cut falls on an archived row (A2's last): the anchor still names its hash, the
    archived rows below the cut are out of the chain, the younger ones stay in it."""
    await accept(store, new("L0", adapters=("copy",)))  # stays live: pending (not claimed)
    mover, _ = await archived(store, tmp_path, "A1", "A2")
    await accept(store, new("L1"), now=LATER)
    pruned = await store.prune_audit(before=LATER - timedelta(days=1), actor=ACTOR, now=LATER)
    assert pruned.removed == 2  # L0's live rows; A1's and A2's went with the segments
    result = await walk(store, mover)
    assert result.ok, result.reason
    assert result.first_seq == pruned.last_seq + 1  # type: ignore[operator]


async def test_restore_shows_the_archived_history_then_the_live_one(
    store: base.Store, tmp_path: Path
) -> None:
    mover, (fid,) = await archived(store, tmp_path, "A1")
    before = (await mover.records.show(fid))["record"]["audit"]
    await mover.records.restore(fid, reason="CBP request", actor=ACTOR)
    shown = (await mover.records.show(fid))["record"]["audit"]
    assert shown[: len(before)] == before and shown[-1]["event"] == "records.restored"
    assert [a["seq"] for a in shown] == sorted({a["seq"] for a in shown})
    assert (await walk(store, mover)).ok


async def test_a_purged_segment_leaves_the_chain_verifiable_with_a_warning(
    store: base.Store, tmp_path: Path
) -> None:
    mover, _ = await archived(store, tmp_path, "A1")
    await finished(store, "L1")
    mover.records.clock = ManualClock(T0 + timedelta(days=200))
    assert await mover.records.purge(dry_run=False, actor=ACTOR)
    result = await walk(store, mover)
    assert result.ok, result.reason
    assert any("purged" in w for w in result.warnings)


async def test_cli_verify_and_export_cover_the_archive(
    store: base.Store, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend != "sqlite":
        return  # the CLI reads a config file naming the store: the SQLite one here
    mover, _ = await archived(store, tmp_path, "A1", "A2")
    await finished(store, "L1")
    monkeypatch.setenv("EDIGW_RECORDS_KEYS", f"k1:{KEY}")
    monkeypatch.setenv("EDIGW_AUDIT__HMAC_KEY", "k" * 32)
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[gateway]\nstore = "sqlite:///{tmp_path / "gateway.db"}"\n'
        f'[audit]\ncheckpoint_dir = "{tmp_path / "checkpoints"}"\n'
        f'[records]\nenabled = true\ndir = "{tmp_path / "records"}"\n'
    )
    main = cli.main
    assert await anyio.to_thread.run_sync(main, ["audit", "verify", "--config", str(config)]) == 0
    out = tmp_path / "export.jsonl"
    export = ["audit", "export", "--config", str(config), "-o", str(out)]
    assert await anyio.to_thread.run_sync(main, export) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sum(x["type"] == "row" for x in lines) == (await all_audit(store))[-1].seq
    check = ["audit", "verify", "--config", str(config), "--file", str(out)]
    assert await anyio.to_thread.run_sync(main, check) == 0
    segment_path(tmp_path, mover).unlink()
    assert await anyio.to_thread.run_sync(main, ["audit", "verify", "--config", str(config)]) == 1
    assert await anyio.to_thread.run_sync(main, export) == 1  # a clear error, no traceback
