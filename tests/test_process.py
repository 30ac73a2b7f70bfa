"""Real processes: SIGKILL mid-send and lease expiry; the CLI against a running gateway."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from gateway.cli import main as cli
from tests.conftest import EXAMPLES, base_config, example, free_port

ROOT = Path(__file__).resolve().parent.parent


def write_toml(path: Path, data: dict) -> Path:
    lines: list[str] = []

    def value(v):
        return json.dumps(v)

    def section(prefix: str, table: dict) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
        if prefix:
            lines.append(f"[{prefix}]")
        lines.extend(f"{k} = {value(v)}" for k, v in scalars.items())
        for k, v in table.items():
            if isinstance(v, dict):
                section(f"{prefix}.{k}" if prefix else k, v)

    routes = data.pop("routes", [])
    section("", data)
    for r in routes:
        lines.append("[[routes]]")
        lines.extend(f"{k} = {value(v)}" for k, v in r.items())
    path.write_text("\n".join(lines) + "\n")
    return path


async def spawn_serve(config_path: Path, *, stderr: int = asyncio.subprocess.PIPE) -> Any:
    """``edi-gateway serve --config …`` as a child process of this checkout (not waited for)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli.main",
        "serve",
        "--config",
        str(config_path),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=stderr,
    )


async def start_serve(config_path: Path, port: int) -> asyncio.subprocess.Process:
    proc: asyncio.subprocess.Process = await spawn_serve(
        config_path, stderr=asyncio.subprocess.DEVNULL
    )
    async with aiohttp.ClientSession() as s:
        for _ in range(300):
            try:
                async with s.get(f"http://127.0.0.1:{port}/readyz") as r:
                    if r.status == 200:
                        return proc
            except aiohttp.ClientError:
                pass
            if proc.returncode is not None:
                raise AssertionError(f"serve exited with {proc.returncode}")
            await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError("serve did not become ready")


def states(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state"))


@pytest.mark.slow
async def test_sigkill_mid_send_is_redelivered_after_the_lease_expires(tmp_path, receiver):
    """Kill -9 a gateway while its sends hang; a new process resends after the lease."""
    port = free_port()
    data = base_config(
        tmp_path,
        gateway={"listen": f"127.0.0.1:{port}", "lease": "1s", "scan_interval": "200ms"},
        adapters={"ace": {"type": "http", "url": receiver.url, "timeout": "30s"}},
        routes=[{"adapters": ["ace"]}],
    )
    cfg = write_toml(tmp_path / "gw.toml", data)
    receiver.hang = asyncio.Event()
    proc = await start_serve(cfg, port)
    try:
        async with aiohttp.ClientSession() as s:
            for i in range(3):
                async with s.post(
                    f"http://127.0.0.1:{port}/v1/filings", json=example(reference=f"K-{i}")
                ) as r:
                    assert r.status == 202
        for _ in range(200):
            if len(receiver.requests) == 3:
                break
            await asyncio.sleep(0.02)
        assert len(receiver.requests) == 3
        assert states(tmp_path / "gateway.db") == {"in_flight": 3}
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    receiver.hang.set()
    receiver.hang = None
    proc2 = await start_serve(cfg, port)
    try:
        for _ in range(300):
            if states(tmp_path / "gateway.db") == {"delivered": 3}:
                break
            await asyncio.sleep(0.05)
        assert states(tmp_path / "gateway.db") == {"delivered": 3}
    finally:
        proc2.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc2.wait(), 15) == 0
    keys = receiver.keys
    assert len(keys) == 6 and all(keys.count(k) == 2 for k in keys)  # same key both times
    with sqlite3.connect(tmp_path / "gateway.db") as conn:
        reclaimed = conn.execute(
            "SELECT COUNT(*) FROM audit WHERE event = 'delivery.in_flight' "
            "AND details LIKE '%reclaimed_expired_lease%'"
        ).fetchone()[0]
        attempts = [r[0] for r in conn.execute("SELECT attempts FROM deliveries")]
    assert reclaimed == 3
    assert attempts == [1, 1, 1]  # the killed attempt never completed, so it was not counted


async def test_sigterm_releases_leases_and_exits_zero(tmp_path, receiver):
    """SIGTERM with sends hanging: exits 0 within the grace, leases released."""
    port = free_port()
    data = base_config(
        tmp_path,
        gateway={"listen": f"127.0.0.1:{port}", "shutdown_grace": "1s"},
        adapters={"ace": {"type": "http", "url": receiver.url, "timeout": "30s"}},
        routes=[{"adapters": ["ace"]}],
    )
    cfg = write_toml(tmp_path / "gw.toml", data)
    receiver.hang = asyncio.Event()
    proc = await start_serve(cfg, port)
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"http://127.0.0.1:{port}/v1/filings", json=example()) as r,
    ):
        assert r.status == 202
    for _ in range(200):
        if receiver.requests:
            break
        await asyncio.sleep(0.02)
    loop = asyncio.get_running_loop()
    start = loop.time()
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 10) == 0
    assert loop.time() - start < 4
    assert states(tmp_path / "gateway.db") == {"pending": 1}


async def test_cli_against_a_running_gateway(tmp_path, start_gateway, capsys):
    """submit/status/list/retry/cancel/adapters: useful output and meaningful exit codes."""
    gw = await start_gateway(base_config(tmp_path))

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main([*argv, "--url", gw.url])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = await anyio.to_thread.run_sync(
        run, "submit", str(EXAMPLES / "isf.json"), "--json"
    )
    assert code == 0
    filing_id = json.loads(out)["id"]
    await gw.wait_for(filing_id, "delivered")
    code, out, _ = await anyio.to_thread.run_sync(run, "submit", str(EXAMPLES / "isf.json"))
    assert code == 0 and "already accepted" in out
    code, out, _ = await anyio.to_thread.run_sync(run, "status", filing_id)
    assert code == 0 and "DELIVERED" in out and "outbox" in out
    code, out, _ = await anyio.to_thread.run_sync(run, "list", "--filing-type", "isf")
    assert code == 0 and filing_id in out
    code, _, err = await anyio.to_thread.run_sync(run, "retry", filing_id)
    assert code == 4 and "409" in err
    code, _, err = await anyio.to_thread.run_sync(run, "status", "fil_nope")
    assert code == 3 and "404" in err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(example(filer_code="")))
    code, _, err = await anyio.to_thread.run_sync(run, "submit", str(bad))
    assert code == 4 and "filer_code" in err
    code, out, _ = await anyio.to_thread.run_sync(run, "adapters")
    assert code == 0 and "outbox" in out
    code = await anyio.to_thread.run_sync(
        cli.main, ["status", "x", "--url", f"http://127.0.0.1:{free_port()}"]
    )
    assert code == 5 and "cannot reach" in capsys.readouterr().err


def test_audit_verify_on_a_fresh_database(tmp_path, capsys):
    """`audit verify` reports the rows checked (0 on an empty store) and exits 0."""
    cfg = write_toml(tmp_path / "gw.toml", base_config(tmp_path))
    assert cli.main(["migrate", "--config", str(cfg)]) == 0
    assert cli.main(["audit", "verify", "--config", str(cfg)]) == 0
    assert "0 rows checked" in capsys.readouterr().out
