"""Retention: prune refuses young rows; after a prune the rest of the trail still verifies."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from audit_helpers import build_trail, tamper, write_checkpoint, write_config

from gateway.cli import main as cli


@pytest.fixture
def old_trail(tmp_path: Path, hmac_env: str) -> Path:
    """100 rows written one a second from 2019-01-01, with a signed checkpoint."""
    db = tmp_path / "gateway.db"
    build_trail(db, 100, start=datetime(2019, 1, 1, tzinfo=UTC))
    write_checkpoint(tmp_path, db)
    return write_config(tmp_path)


def audit_seqs(tmp_path: Path) -> list[int]:
    conn = sqlite3.connect(tmp_path / "gateway.db")
    seqs = [r[0] for r in conn.execute("SELECT seq FROM audit ORDER BY seq")]
    conn.close()
    return seqs


def test_prune_refuses_a_date_inside_the_retention(tmp_path, old_trail, capsys):
    """--before one year ago, with five years' retention → refused (exit 4), nothing removed."""
    before = (datetime.now(UTC) - timedelta(days=365)).date().isoformat()
    assert cli.main(["audit", "prune", "--config", str(old_trail), "--before", before]) == 4
    assert "retention" in capsys.readouterr().err
    assert audit_seqs(tmp_path) == list(range(1, 101))


def test_prune_refuses_with_a_configured_retention(tmp_path, hmac_env, capsys):
    """A configured retention of 30 days refuses --before 10 days ago."""
    build_trail(tmp_path / "gateway.db", 5)
    cfg = write_config(tmp_path, retention="30d")
    before = (datetime.now(UTC) - timedelta(days=10)).isoformat()
    assert cli.main(["audit", "prune", "--config", str(cfg), "--before", before]) == 4


def test_prune_outside_retention_keeps_the_trail_verifiable(tmp_path, old_trail, capsys):
    """Pruning rows older than 2019-01-01T00:00:30 leaves an anchor; verify still passes."""
    code = cli.main(
        ["audit", "prune", "--config", str(old_trail), "--before", "2019-01-01T00:00:30Z", "--json"]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["removed"] == 29
    assert result["last_seq"] == 29
    assert result["anchor_seq"] == 101
    assert audit_seqs(tmp_path) == list(range(30, 102))

    assert cli.main(["audit", "verify", "--config", str(old_trail), "--json"]) == 0
    verified = json.loads(capsys.readouterr().out)
    assert verified["ok"]
    assert verified["first_seq"] == 30
    assert verified["checkpoint_seq"] == 101


def test_prune_records_the_anchor_row_that_continues_the_chain(tmp_path, old_trail, capsys):
    """The audit.pruned row names the removed range and the hash the chain continues from."""
    conn = sqlite3.connect(tmp_path / "gateway.db")
    hash_29 = conn.execute("SELECT hash FROM audit WHERE seq = 29").fetchone()[0]
    conn.close()
    cli.main(["audit", "prune", "--config", str(old_trail), "--before", "2019-01-01T00:00:30Z"])
    conn = sqlite3.connect(tmp_path / "gateway.db")
    event, actor, details = conn.execute(
        "SELECT event, actor, details FROM audit ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    conn.close()
    details = json.loads(details)
    assert event == "audit.pruned"
    assert actor.startswith("cli:")
    assert details["continues_from"] == hash_29
    assert (details["removed_from_seq"], details["removed_to_seq"]) == (1, 29)


def test_ordinary_delete_is_still_refused_after_a_prune(tmp_path, old_trail):
    """The prune guard is set only inside the prune transaction: DELETE stays refused."""
    cli.main(["audit", "prune", "--config", str(old_trail), "--before", "2019-01-01T00:00:30Z"])
    conn = sqlite3.connect(tmp_path / "gateway.db")
    assert conn.execute("SELECT COUNT(*) FROM audit_prune_guard").fetchone()[0] == 0
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit WHERE seq = 50")
    conn.close()


def test_rows_removed_after_a_prune_are_still_caught(tmp_path, old_trail, capsys):
    """Deleting more old rows by hand after a prune no longer matches the anchor → exit 1."""
    cli.main(["audit", "prune", "--config", str(old_trail), "--before", "2019-01-01T00:00:30Z"])
    tamper(tmp_path / "gateway.db", "DELETE FROM audit WHERE seq < 40")
    capsys.readouterr()
    assert cli.main(["audit", "verify", "--config", str(old_trail), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["first_bad_seq"] == 40


def test_prune_refuses_a_trail_that_does_not_verify(tmp_path, old_trail, capsys):
    """Pruning would destroy evidence: a broken trail is not pruned (exit 1)."""
    tamper(tmp_path / "gateway.db", "UPDATE audit SET actor = 'x' WHERE seq = 3")
    code = cli.main(
        ["audit", "prune", "--config", str(old_trail), "--before", "2019-01-01T00:00:30Z"]
    )
    assert code == 1
    assert "does not verify" in capsys.readouterr().err
    assert audit_seqs(tmp_path) == list(range(1, 101))


def test_full_export_after_a_prune_verifies(tmp_path, old_trail, capsys):
    """An export of a pruned trail starts at the first kept row and still verifies."""
    cli.main(["audit", "prune", "--config", str(old_trail), "--before", "2019-01-01T00:00:30Z"])
    path = tmp_path / "after.jsonl"
    assert cli.main(["audit", "export", "--config", str(old_trail), "-o", str(path)]) == 0
    capsys.readouterr()
    assert cli.main(["audit", "verify", "--config", str(old_trail), "--file", str(path)]) == 0
