"""Audit export: JSON Lines that verify offline; a changed line fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from audit_helpers import build_trail, write_checkpoint, write_config

from gateway.cli import main as cli


@pytest.fixture
def trail(tmp_path: Path, hmac_env: str) -> Path:
    """A 120-row trail (two rows a minute from 2020-01-01) with a signed checkpoint."""
    db = tmp_path / "gateway.db"
    build_trail(db, 120, step_s=30)
    write_checkpoint(tmp_path, db)
    return write_config(tmp_path)


def export(cfg: Path, out: Path, *extra: str) -> list[dict]:
    assert cli.main(["audit", "export", "--config", str(cfg), "-o", str(out), *extra]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def verify_file(cfg: Path, path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    code = cli.main(["audit", "verify", "--config", str(cfg), "--file", str(path), "--json"])
    return code, json.loads(capsys.readouterr().out)


def rewrite_line(path: Path, index: int, change) -> None:
    lines = path.read_text().splitlines()
    obj = json.loads(lines[index])
    change(obj)
    lines[index] = json.dumps(obj, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")


def test_full_export_carries_header_rows_and_trailer(tmp_path, trail):
    """A complete export: header with the signed checkpoint, every row with hashes, trailer."""
    lines = export(trail, tmp_path / "all.jsonl")
    header, rows, trailer = lines[0], lines[1:-1], lines[-1]
    assert header["complete"]
    assert header["checkpoint"]["seq"] == 120
    assert header["checkpoint"]["hmac"]
    assert [r["seq"] for r in rows] == list(range(1, 121))
    assert all(r["hash"] and r["prev_hash"] for r in rows)
    assert trailer["rows"] == 120
    assert trailer["hmac"]


def test_export_carries_its_own_chains_checkpoint_beside_another_chains(tmp_path, trail, capsys):
    """Another chain's newer, longer checkpoint in the directory: the export carries this
    chain's own (row 120, naming the chain) and verifies."""
    from datetime import UTC, datetime

    other = tmp_path / "other.db"
    build_trail(other, 300, start=datetime(2018, 1, 1, tzinfo=UTC))
    write_checkpoint(tmp_path, other)
    path = tmp_path / "all.jsonl"
    header = export(trail, path)[0]
    assert header["checkpoint"]["seq"] == 120
    assert header["checkpoint"]["chain"] == json.loads(path.read_text().splitlines()[1])["hash"]
    code, out = verify_file(trail, path, capsys)
    assert code == 0 and out["checkpoint_seq"] == 120


def test_export_then_verify_file_round_trip(tmp_path, trail, capsys):
    """`audit export` → `audit verify --file` exits 0 with the rows checked."""
    path = tmp_path / "all.jsonl"
    export(trail, path)
    code, out = verify_file(trail, path, capsys)
    assert code == 0
    assert out["rows"] == 120
    assert out["complete"]
    assert out["sealed"]
    assert out["checkpoint_seq"] == 120


def test_export_to_stdout_verifies_too(tmp_path, trail, capsys):
    """Without -o the export goes to stdout (no progress bar off a terminal)."""
    assert cli.main(["audit", "export", "--config", str(trail)]) == 0
    captured = capsys.readouterr()
    assert "exporting [" not in captured.err
    path = tmp_path / "stdout.jsonl"
    path.write_text(captured.out)
    code, out = verify_file(trail, path, capsys)
    assert code == 0
    assert out["rows"] == 120


def test_changed_detail_in_an_export_line_fails_naming_the_row(tmp_path, trail, capsys):
    """Changing one row's details in the file → exit 1 naming that row and line."""
    path = tmp_path / "all.jsonl"
    export(trail, path)
    rewrite_line(path, 42, lambda r: r["details"].update(note="edited"))
    code, out = verify_file(trail, path, capsys)
    assert code == 1
    assert out["first_bad_seq"] == 42
    assert out["line"] == 43


def test_removed_export_line_fails(tmp_path, trail, capsys):
    """Dropping a row line from a complete export → exit 1 naming the missing row."""
    path = tmp_path / "all.jsonl"
    export(trail, path)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:10] + lines[11:]))
    code, out = verify_file(trail, path, capsys)
    assert code == 1
    assert out["first_bad_seq"] == 10


def test_export_cut_short_fails(tmp_path, trail, capsys):
    """An export missing its last lines (and trailer) does not verify."""
    path = tmp_path / "all.jsonl"
    export(trail, path)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-6]))
    code, out = verify_file(trail, path, capsys)
    assert code == 1
    assert "trailer" in out["reason"]


def test_rehashed_last_row_is_caught_by_the_seal(tmp_path, trail, capsys):
    """Even a row edited with its hash recomputed fails: the checkpoint and the seal disagree."""
    from gateway.audit import chain as audit

    path = tmp_path / "all.jsonl"
    export(trail, path)

    def forge(r: dict) -> None:
        r["details"]["note"] = "forged"
        r["hash"] = audit.row_hash(
            r["prev_hash"],
            seq=r["seq"],
            at=r["at"],
            actor=r["actor"],
            filing_id=r["filing_id"],
            delivery_id=r["delivery_id"],
            event=r["event"],
            details=r["details"],
        )

    rewrite_line(path, 120, forge)
    code, out = verify_file(trail, path, capsys)
    assert code == 1
    assert out["first_bad_seq"] == 120


def test_filtered_export_holds_only_matching_rows_and_verifies(tmp_path, trail, capsys):
    """--filing and --since/--until select rows; the filtered file verifies and says so."""
    path = tmp_path / "one.jsonl"
    lines = export(trail, path, "--filing", "fil_5")
    assert [r["seq"] for r in lines[1:-1]] == [15, 16, 17]
    assert lines[0]["complete"] is False
    assert lines[0]["filters"] == {"filing": ["fil_5"]}
    code, out = verify_file(trail, path, capsys)
    assert code == 0
    assert out["rows"] == 3
    assert not out["complete"]

    window = export(
        trail,
        tmp_path / "window.jsonl",
        "--since",
        "2020-01-01T00:10:00Z",
        "--until",
        "2020-01-01T00:20:00Z",
    )
    assert [r["seq"] for r in window[1:-1]] == list(range(20, 40))


def test_changed_line_in_a_filtered_export_fails(tmp_path, trail, capsys):
    """In a filtered export each row still checks its own hash: an edit fails."""
    path = tmp_path / "one.jsonl"
    export(trail, path, "--filing", "fil_5")
    rewrite_line(path, 2, lambda r: r.update(actor="someone-else"))
    code, out = verify_file(trail, path, capsys)
    assert code == 1
    assert out["first_bad_seq"] == 16


def test_verify_file_without_the_key_checks_the_chain_and_warns(
    tmp_path, trail, capsys, monkeypatch
):
    """Offline without the key: the chain is checked; the seal and checkpoint are not."""
    path = tmp_path / "all.jsonl"
    export(trail, path)
    monkeypatch.delenv("EDIGW_AUDIT__HMAC_KEY")
    monkeypatch.chdir(tmp_path)  # no ./var/audit-checkpoints key left by anything else
    code = cli.main(
        ["audit", "verify", "--config", str(tmp_path / "absent.toml"), "--file", str(path)]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "seal NOT checked" in captured.out
    assert "not authenticated" in captured.err
