"""``edi-gateway records …`` on a real SQLite store and archive: search, show, verify (exit
1 on a flipped byte), restore, holds and purge, each with its exit code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from gateway import config
from gateway.cli.main import main
from gateway.clock import SystemClock
from gateway.service import mover as mover_mod
from gateway.store import sqlite
from tests.records.test_records_wiring import finished


@pytest.fixture
def archived(tmp_path: Path) -> tuple[Path, list[str]]:
    """A config whose store had two finished filings (of 2025), moved to the archive."""
    db = tmp_path / "gw.db"
    cfg_path = tmp_path / "gateway.toml"
    cfg_path.write_text(
        f'[gateway]\nstore = "sqlite:///{db}"\n[records]\nenabled = true\n'
        f'dir = "{tmp_path / "records"}"\n'
    )

    async def setup() -> list[str]:
        store = sqlite.SqliteStore(db)
        await store.open()
        try:
            await store.migrate()
            ids = await finished(store, "R1", "R2")
            cfg = config.load_config(cfg_path, environ={})
            mover = mover_mod.build(cfg, store, SystemClock(), {}, 0)
            assert mover is not None
            assert await mover.round() == 2
            mover.records.close()
            return ids
        finally:
            await store.close()

    return cfg_path, anyio.run(setup)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(list(argv))
    out = capsys.readouterr().out
    try:
        return code, json.loads(out)
    except ValueError:
        return code, out


def test_search_show_and_verify(archived: tuple[Path, list[str]], capsys: Any) -> None:
    cfg, ids = archived
    code, data = cli(capsys, "records", "search", "--reference", "r1", "--json", "-c", str(cfg))
    assert code == 0 and [i["id"] for i in data["items"]] == [ids[0]]
    assert data["items"][0]["where"] == "archive"
    code, text = cli(capsys, "records", "show", ids[0], "-c", str(cfg))
    assert code == 0 and '{"bill_of_lading":"BOL-R1"}' in text and "records.archived" not in text
    code, data = cli(capsys, "records", "verify", "--deep", "--json", "-c", str(cfg))
    assert code == 0 and data["ok"] and data["segments"] == 1
    code, _ = cli(capsys, "records", "show", "fil_nope", "-c", str(cfg))
    assert code == 3


def test_verify_exits_1_on_a_flipped_byte(archived: tuple[Path, list[str]], capsys: Any) -> None:
    cfg, _ = archived
    (seg,) = (cfg.parent / "records" / "segments").glob("*.seg")
    data = bytearray(seg.read_bytes())
    data[len(data) // 2] ^= 0x40
    seg.write_bytes(bytes(data))
    code, out = cli(capsys, "records", "verify", "-c", str(cfg))
    assert code == 1 and "altered" in out and seg.name in out


def test_restore_then_hold_and_purge(archived: tuple[Path, list[str]], capsys: Any) -> None:
    cfg, ids = archived
    c = ("-c", str(cfg))
    with pytest.raises(SystemExit) as usage:  # --reason is required
        main(["records", "restore", ids[0], *c])
    assert usage.value.code == 2
    assert cli(capsys, "records", "restore", ids[0], "--reason", "CBP asked", *c)[0] == 0
    assert cli(capsys, "records", "restore", ids[0], "--reason", "again", *c)[0] == 4
    code, data = cli(capsys, "records", "search", "--reference", "R1", "--json", *c)
    assert [(i["id"], i["where"]) for i in data["items"]] == [(ids[0], "live")]
    code, data = cli(capsys, "records", "hold", "add", "--kind", "filer_code", "--value", "ABC",
                     "--reason", "litigation", "--json", *c)  # fmt: skip
    hold = data["id"]
    assert cli(capsys, "records", "hold", "add", "--kind", "ship", "--value", "x",
               "--reason", "r", *c)[0] == 4  # fmt: skip
    code, data = cli(capsys, "records", "purge", "--dry-run", "--json", *c)
    assert code == 0 and data["segments"] == []  # held
    assert cli(capsys, "records", "hold", "release", hold, "--reason", "done", *c)[0] == 0
    code, data = cli(capsys, "records", "purge", "--dry-run", "--json", *c)
    assert [s["records"] for s in data["segments"]] == [2]
    code, data = cli(capsys, "records", "purge", "--yes", "--json", *c)
    assert code == 0 and len(data["segments"]) == 1
    code, data = cli(capsys, "records", "verify", "--json", *c)
    assert code == 0 and data["segments"] == 0
    code, data = cli(capsys, "records", "hold", "list", "--json", *c)
    assert data["holds"][0]["released_by"].startswith("cli:")


def test_a_bad_search_parameter_is_named(archived: tuple[Path, list[str]], capsys: Any) -> None:
    cfg, _ = archived
    code = main(["records", "search", "--limit", "0", "-c", str(cfg)])
    assert code == 4 and "--limit" in capsys.readouterr().err


def test_records_and_audit_prune_refuse_a_database_not_migrated(
    tmp_path: Path, capsys: Any
) -> None:
    """A local command on a store older than this gateway says to migrate (exit 5), and
    writes nothing: `records search` and `audit prune` share the check."""
    db = tmp_path / "old.db"
    cfg_path = tmp_path / "gateway.toml"
    cfg_path.write_text(
        f'[gateway]\nstore = "sqlite:///{db}"\n[records]\nenabled = true\n'
        f'dir = "{tmp_path / "records"}"\n'
    )
    for argv in (
        ["records", "search", "--config", str(cfg_path), "--reference", "R1"],
        ["audit", "prune", "--config", str(cfg_path), "--before", "2020-01-01T00:00:00Z"],
    ):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 5, (argv, err)
        assert "run `edi-gateway migrate` first" in err, argv
