"""The audit chain: tampering is caught and named, the table refuses changes, verify streams."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import tracemalloc
from pathlib import Path

import pytest
from audit_helpers import build_trail, tamper, write_checkpoint, write_config
from hypothesis import given
from hypothesis import strategies as st

from gateway.audit import chain as audit
from gateway.cli import main as cli


def verify(cfg: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    code = cli.main(["audit", "verify", "--config", str(cfg), "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def trail(tmp_path: Path, hmac_env: str) -> Path:
    """A 50-row trail with a signed checkpoint of its head, and its config file."""
    db = tmp_path / "gateway.db"
    build_trail(db, 50)
    write_checkpoint(tmp_path, db)
    return write_config(tmp_path)


def test_untouched_chain_verifies_and_reports_rows_checked(trail, capsys):
    """An untouched trail verifies against its checkpoint: exit 0 with the rows checked."""
    code, out = verify(trail, capsys)
    assert code == 0
    assert out["ok"]
    assert out["rows"] == 50
    assert out["checkpoint_seq"] == 50


def test_untouched_chain_human_output_names_rows_checked(trail, capsys):
    """Without --json the operator reads 'N rows checked'."""
    assert cli.main(["audit", "verify", "--config", str(trail)]) == 0
    assert "50 rows checked" in capsys.readouterr().out


def test_flipped_byte_in_a_row_fails_naming_that_row(tmp_path, trail, capsys):
    """One changed character in row 17's details → exit 1 naming row 17."""
    tamper(
        tmp_path / "gateway.db",
        "UPDATE audit SET details = replace(details, 'row 17', 'row 18') WHERE seq = 17",
    )
    code, out = verify(trail, capsys)
    assert code == 1
    assert out["first_bad_seq"] == 17
    assert "does not match its hash" in out["reason"]


def test_flipped_byte_in_the_file_itself_is_caught(tmp_path, trail, capsys):
    """Editing the SQLite file's bytes (not through SQL) is caught as well."""
    db = tmp_path / "gateway.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(db.read_bytes())
    at = data.index(b'"note":"row 23"')
    data[at + len(b'"note":"row 2')] = ord("4")  # 'row 23' → 'row 24', same length
    db.write_bytes(bytes(data))
    code, out = verify(trail, capsys)
    assert code == 1
    assert out["first_bad_seq"] == 23


def test_changed_actor_fails_naming_the_row(tmp_path, trail, capsys):
    """Changing who did it (the actor column) breaks that row's hash."""
    tamper(tmp_path / "gateway.db", "UPDATE audit SET actor = 'ops' WHERE seq = 5")
    code, out = verify(trail, capsys)
    assert code == 1
    assert out["first_bad_seq"] == 5


def test_deleted_row_fails_naming_the_missing_row(tmp_path, trail, capsys):
    """Deleting row 30 → exit 1 naming row 30 as missing."""
    tamper(tmp_path / "gateway.db", "DELETE FROM audit WHERE seq = 30")
    code, out = verify(trail, capsys)
    assert code == 1
    assert out["first_bad_seq"] == 30
    assert "missing" in out["reason"]


def test_deleted_first_rows_fail_without_a_prune_anchor(tmp_path, trail, capsys):
    """Removing the oldest rows by hand (no audit.pruned anchor) → exit 1."""
    tamper(tmp_path / "gateway.db", "DELETE FROM audit WHERE seq <= 3")
    code, out = verify(trail, capsys)
    assert code == 1
    assert out["first_bad_seq"] == 4
    assert "audit.pruned" in out["reason"]


def test_swapped_rows_fail_naming_the_first_of_them(tmp_path, trail, capsys):
    """Swapping the contents of rows 10 and 11 → exit 1 naming row 10."""
    cols = "at, actor, filing_id, delivery_id, event, details, prev_hash, hash"
    tamper(
        tmp_path / "gateway.db",
        f"CREATE TEMP TABLE t AS SELECT seq, {cols} FROM audit WHERE seq IN (10, 11)",
        *(
            f"UPDATE audit SET ({cols}) = (SELECT {cols} FROM t WHERE t.seq = {b}) WHERE seq = {a}"
            for a, b in ((10, 11), (11, 10))
        ),
    )
    code, out = verify(trail, capsys)
    assert code == 1
    assert out["first_bad_seq"] == 10


def test_inserted_row_fails_naming_it(tmp_path, trail, capsys):
    """A row slipped in (seqs shifted to make room) breaks the chain at that row."""
    db = tmp_path / "gateway.db"
    tamper(
        db,
        "UPDATE audit SET seq = seq + 1000 WHERE seq >= 20",
        "UPDATE audit SET seq = seq - 999 WHERE seq >= 1020",
        "INSERT INTO audit SELECT 20, at, actor, filing_id, delivery_id, 'delivery.dead', "
        "details, prev_hash, hash FROM audit WHERE seq = 19",
    )
    code, out = verify(trail, capsys)
    assert code == 1
    assert out["first_bad_seq"] == 20


def test_cut_off_tail_fails_against_the_checkpoint(tmp_path, trail, capsys):
    """Deleting the last 5 rows leaves a valid chain, but the checkpoint names row 46."""
    tamper(tmp_path / "gateway.db", "DELETE FROM audit WHERE seq > 45")
    code, out = verify(trail, capsys)
    assert code == 1
    assert out["first_bad_seq"] == 46
    assert "cut off" in out["reason"]


def test_rewritten_chain_fails_against_the_checkpoint(tmp_path, trail, capsys):
    """A chain recomputed from row 40 on is self-consistent, but not what was signed."""
    db = tmp_path / "gateway.db"
    tamper(db, "DELETE FROM audit WHERE seq >= 40")
    conn = sqlite3.connect(db)
    prev = conn.execute("SELECT hash FROM audit WHERE seq = 39").fetchone()[0]
    conn.close()
    from gateway.audit import chain as audit

    conn = sqlite3.connect(db)
    with conn:
        for seq in range(40, 51):
            details = {"forged": True}
            h = audit.row_hash(
                prev,
                seq=seq,
                at="2020-01-01T00:00:00.000000Z",
                actor="system",
                filing_id=None,
                delivery_id=None,
                event="x",
                details=details,
            )
            conn.execute(
                "INSERT INTO audit VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    seq,
                    "2020-01-01T00:00:00.000000Z",
                    "system",
                    None,
                    None,
                    "x",
                    audit.canonical(details),
                    prev,
                    h,
                ),
            )
            prev = h
    conn.close()
    code, out = verify(trail, capsys)
    assert code == 1
    assert out["first_bad_seq"] == 50
    assert "checkpoint" in out["reason"]


def test_altered_checkpoint_file_fails(tmp_path, trail, capsys):
    """A checkpoint edited to match a shorter trail does not authenticate → exit 1."""
    [file] = (tmp_path / "checkpoints").glob("chain-*/checkpoint-*.json")
    data = json.loads(file.read_text())
    data["seq"] = 45
    file.write_text(json.dumps(data))
    code, out = verify(trail, capsys)
    assert code == 1
    assert "HMAC" in out["files"][0]


def test_update_and_delete_on_the_audit_table_are_refused(tmp_path, trail):
    """The store's triggers refuse UPDATE and DELETE of audit rows."""
    conn = sqlite3.connect(tmp_path / "gateway.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit SET actor = 'x' WHERE seq = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit WHERE seq = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit")
    conn.close()


def _measure(cfg: Path) -> tuple[int, float, int]:
    tracemalloc.start()
    try:
        started = time.perf_counter()
        assert cli.main(["audit", "verify", "--config", str(cfg)]) == 0
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, elapsed, 0


@pytest.mark.slow
@pytest.mark.timeout(360)  # tracemalloc slows the 100,000-row walk to ~70 s at load 12
def test_verify_streams_100k_rows_in_constant_memory(tmp_path, hmac_env, capsys):
    """Peak memory verifying 100,000 rows stays within twice the peak for 10,000 rows."""
    peaks = {}
    for n in (10_000, 100_000):
        home = tmp_path / str(n)
        home.mkdir()
        build_trail(home / "gateway.db", n)
        write_checkpoint(home, home / "gateway.db")
        cfg = write_config(home)
        if n == 10_000:  # warm-up once: imports and caches are not the chain's memory
            _measure(cfg)
            capsys.readouterr()
        peak, elapsed, _ = _measure(cfg)
        peaks[n] = peak
        out = capsys.readouterr().out
        assert f"{n} rows checked" in out
        with capsys.disabled():
            print(
                f"\naudit verify {n:>7} rows: {elapsed:5.2f}s, tracemalloc peak "
                f"{peak / 1024:,.0f} KiB"
            )
    assert peaks[100_000] <= 2 * peaks[10_000]


# --- the row hash spelled out equals the hash of the whole row's canonical JSON ----------

_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


@given(
    seq=st.integers(min_value=1, max_value=2**62),
    actor=_text,
    filing_id=st.none() | _text,
    delivery_id=st.none() | _text,
    event=_text,
    details=st.dictionaries(_text, _json, max_size=5),
)
def test_row_hash_of_canonical_is_the_canonical_row(
    seq: int,
    actor: str,
    filing_id: str | None,
    delivery_id: str | None,
    event: str,
    details: dict,
) -> None:
    """The stores hash pre-serialised details; ``audit verify`` recomputes from the dict."""
    row = {
        "seq": seq,
        "at": "2026-11-27T00:00:00.000000Z",
        "actor": actor,
        "filing_id": filing_id,
        "delivery_id": delivery_id,
        "event": event,
        "details": details,
    }
    expected = hashlib.sha256((audit.canonical(row) + audit.GENESIS).encode()).hexdigest()
    assert audit.row_hash(audit.GENESIS, **row) == expected
    got = audit.row_hash_of_canonical(
        audit.GENESIS,
        **{k: v for k, v in row.items() if k != "details"},
        details_json=audit.canonical(details),
    )
    assert got == expected
