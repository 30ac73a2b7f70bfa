"""Helpers of the audit tests: real SQLite files, trails built with batched inserts."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio

from gateway.audit import chain as audit
from gateway.audit import checkpoints
from gateway.store import sqlite as sqlite_store

KEY = "test-audit-hmac-key-0123456789abcdef"


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def write_config(tmp_path: Path, **audit_section: Any) -> Path:
    """A TOML config: SQLite in tmp_path, checkpoints in tmp_path/checkpoints."""
    lines = [
        "[gateway]",
        f'store = "sqlite:///{tmp_path / "gateway.db"}"',
        "[audit]",
        f'checkpoint_dir = "{tmp_path / "checkpoints"}"',
        *(f"{k} = {toml_value(v)}" for k, v in audit_section.items()),
    ]
    path = tmp_path / "gateway.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def migrate(db: Path) -> None:
    """Create the schema the way the store does (all migrations)."""

    async def _run() -> None:
        store = sqlite_store.SqliteStore(db)
        await store.open()
        try:
            await store.migrate()
        finally:
            await store.close()

    anyio.run(_run)


def build_trail(db: Path, rows: int, *, start: datetime | None = None, step_s: float = 1.0) -> str:
    """Append ``rows`` chained audit rows with batched inserts; returns the head hash."""
    migrate(db)
    start = start or datetime(2020, 1, 1, tzinfo=UTC)
    conn = sqlite3.connect(db)
    prev, batch = audit.GENESIS, []
    with conn:
        for seq in range(1, rows + 1):
            at = (start + timedelta(seconds=seq * step_s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            details = {"adapter": "outbox", "attempt": seq % 7, "note": f"row {seq}"}
            event = "delivery.sent"
            h = audit.row_hash(
                prev,
                seq=seq,
                at=at,
                actor="system",
                filing_id=f"fil_{seq // 3}",
                delivery_id=f"dlv_{seq}",
                event=event,
                details=details,
            )
            batch.append(
                (
                    seq,
                    at,
                    "system",
                    f"fil_{seq // 3}",
                    f"dlv_{seq}",
                    event,
                    audit.canonical(details),
                    prev,
                    h,
                )
            )
            prev = h
            if len(batch) >= 5000:
                conn.executemany("INSERT INTO audit VALUES (?,?,?,?,?,?,?,?,?)", batch)
                batch = []
        conn.executemany("INSERT INTO audit VALUES (?,?,?,?,?,?,?,?,?)", batch)
    conn.close()
    return prev


def write_checkpoint(tmp_path: Path, db: Path) -> checkpoints.Checkpoint:
    """Sign the trail's current head, bound to its chain, into tmp_path/checkpoints."""
    conn = sqlite3.connect(db)
    seq, head = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    [chain] = conn.execute("SELECT hash FROM audit WHERE seq = 1").fetchone()
    conn.close()
    cp = checkpoints.Checkpoint(
        seq=seq, head=head, at="2026-01-06T12:00:00Z", chain=chain, store=f"sqlite:///{db}"
    )
    checkpoints.CheckpointDir(tmp_path / "checkpoints", key=KEY.encode()).write(cp)
    return cp


def tamper(db: Path, *statements: str) -> None:
    """Run SQL on the audit table with the append-only triggers dropped (an attacker's view)."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
        conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
        for statement in statements:
            conn.execute(statement)
    conn.close()


def gateway_config(tmp_path: Path, **audit_section: Any) -> dict[str, Any]:
    """A config dict for an in-process gateway delivering to a filedrop outbox."""
    return {
        "gateway": {
            "listen": "127.0.0.1:0",
            "store": f"sqlite:///{tmp_path / 'gateway.db'}",
            "lease": "5s",
            "scan_interval": "100ms",
            "shutdown_grace": "2s",
        },
        "adapters": {
            "outbox": {"type": "filedrop", "directory": str(tmp_path / "outbox"), "fsync": False}
        },
        "routes": [{"filing_types": ["*"], "adapters": ["outbox"]}],
        "audit": {"checkpoint_dir": str(tmp_path / "checkpoints"), **audit_section},
    }
