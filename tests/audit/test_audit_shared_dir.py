"""Checkpoints bound to their chain: stores sharing a checkpoint directory raise no false
alarm, and each chain's own cut tail or rewrite is still caught."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from audit_helpers import KEY, build_trail, gateway_config, tamper, write_checkpoint
from audit_helpers import write_config as write_default_config
from test_audit_lifecycle import submit_and_deliver

from gateway.audit import checkpoints
from gateway.cli import main as cli
from tests.store.conftest import fresh_schema


def write_config(path: Path, store: str, checkpoint_dir: Path) -> Path:
    path.write_text(f'[gateway]\nstore = "{store}"\n[audit]\ncheckpoint_dir = "{checkpoint_dir}"\n')
    return path


def verify(cfg: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict, str]:
    capsys.readouterr()
    code = cli.main(["audit", "verify", "--config", str(cfg), "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def last_seq(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT MAX(seq) FROM audit").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize("other", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_two_stores_sharing_a_checkpoint_directory_both_verify_and_a_cut_tail_is_caught(
    tmp_path, run_gateway, hmac_env, capsys, other
):
    """Two gateways sign into one directory; both verify; cutting one's tail is caught."""
    shared = tmp_path / "checkpoints"
    async with contextlib.AsyncExitStack() as stack:
        b_store = (
            await stack.enter_async_context(fresh_schema())
            if other == "postgres"
            else f"sqlite:///{tmp_path / 'b.db'}"
        )
        a_store = f"sqlite:///{tmp_path / 'a.db'}"
        runs = [(a_store, 2), (b_store, 4), (a_store, 3)]  # interleaved: seqs overlap
        for store, filings in runs:
            data = gateway_config(tmp_path, hmac_key=KEY, checkpoint_every_rows=2)
            data["gateway"]["store"] = store
            gw, stop = await run_gateway(data)
            await submit_and_deliver(gw, filings)
            await stop()
        a_cfg = write_config(tmp_path / "a.toml", a_store, shared)
        b_cfg = write_config(tmp_path / "b.toml", b_store, shared)
        directory = checkpoints.CheckpointDir(shared, key=KEY.encode())
        assert len(directory.chains()) == 2

        for cfg in (a_cfg, b_cfg):
            code, out, err = await asyncio.to_thread(verify, cfg, capsys)
            assert code == 0, out
            assert out["checkpoint_seq"] == out["last_seq"]  # signed at its clean stop
            assert len(out["other_chains"]) == 1 and out["other_chains"][0] != out["chain"]
            assert "also holds the checkpoints of 1 other chain(s)" in err

        a_db = tmp_path / "a.db"
        head = last_seq(a_db)
        tamper(a_db, f"DELETE FROM audit WHERE seq > {head - 3}")
        code, out, _ = await asyncio.to_thread(verify, a_cfg, capsys)
        assert code == 1
        assert out["first_bad_seq"] == head - 2
        assert "tail of the trail was cut off" in out["reason"]
        code, out, _ = await asyncio.to_thread(verify, b_cfg, capsys)
        assert code == 0, out


def test_a_chain_rewritten_from_a_middle_row_is_caught_beside_another_chain(
    tmp_path, hmac_env, capsys
):
    """Another chain's checkpoints in the directory do not hide a rewrite of this one."""
    a_db, b_db = tmp_path / "gateway.db", tmp_path / "other.db"
    build_trail(b_db, 80, start=datetime(2018, 1, 1, tzinfo=UTC))  # another chain
    write_checkpoint(tmp_path, b_db)
    build_trail(a_db, 50)
    write_checkpoint(tmp_path, a_db)
    cfg = write_default_config(tmp_path)
    assert verify(cfg, capsys)[0] == 0
    tamper(a_db, "UPDATE audit SET hash = 'f' || substr(hash, 2) WHERE seq = 50")
    code, out, _ = verify(cfg, capsys)
    assert code == 1
    assert out["first_bad_seq"] == 50


def test_old_unbound_checkpoints_confirm_their_rows_and_the_others_are_named(
    tmp_path, hmac_env, capsys
):
    """Version-1 checkpoints: one matching this chain confirms it; another chain's is a
    warning naming its row, not an alarm."""
    db, other = tmp_path / "gateway.db", tmp_path / "other.db"
    build_trail(other, 70, start=datetime(2018, 1, 1, tzinfo=UTC))
    head = build_trail(db, 40)
    directory = checkpoints.CheckpointDir(tmp_path / "checkpoints", key=KEY.encode())
    directory.write(checkpoints.Checkpoint(seq=40, head=head, at="2025-01-01T00:00:00Z"))
    conn = sqlite3.connect(other)
    [other_head] = conn.execute("SELECT hash FROM audit WHERE seq = 70").fetchone()
    conn.close()
    directory.write(checkpoints.Checkpoint(seq=70, head=other_head, at="2025-01-02T00:00:00Z"))
    assert [p.name for p in (tmp_path / "checkpoints").glob("checkpoint-*.json")] != []

    code, out, err = verify(write_default_config(tmp_path), capsys)
    assert code == 0, out
    assert out["unbound_checkpoints"] == {"confirmed": 1, "unmatched": [70]}
    assert "match no row of this chain (rows 70)" in err


def test_a_pruned_chain_keeps_its_checkpoints_and_still_catches_a_cut_tail(
    tmp_path, hmac_env, capsys
):
    """After prune removes row 1, the prune record binds the chain: its checkpoint is found,
    and a cut tail is caught."""
    db = tmp_path / "gateway.db"
    build_trail(db, 100, start=datetime(2019, 1, 1, tzinfo=UTC))
    write_checkpoint(tmp_path, db)
    build_trail(tmp_path / "other.db", 120)
    write_checkpoint(tmp_path, tmp_path / "other.db")
    cfg = write_default_config(tmp_path)
    prune = ["audit", "prune", "--config", str(cfg), "--before", "2019-01-01T00:00:30Z"]
    assert cli.main(prune) == 0
    assert list((tmp_path / "checkpoints").glob("chain-*/pruned-*.json"))
    code, out, _ = verify(cfg, capsys)
    assert code == 0, out
    assert (out["first_seq"], out["checkpoint_seq"]) == (30, 101)
    tamper(db, "DELETE FROM audit WHERE seq = 101")  # the anchor row, the chain's last
    code, out, _ = verify(cfg, capsys)
    assert code == 1
    assert "audit.pruned" in out["reason"] or "cut off" in out["reason"]
