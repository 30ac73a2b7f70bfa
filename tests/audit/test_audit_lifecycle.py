"""The served trail: start/stop and config rows, every delivery step, checkpoints written."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
from pathlib import Path

import aiohttp
import anyio
import structlog
from audit_helpers import gateway_config, toml_value

from gateway import logs
from gateway.audit import checkpoints
from gateway.cli import main as cli
from gateway.server import config_hash


def trail(tmp_path: Path) -> list[tuple[int, str, str | None]]:
    conn = sqlite3.connect(tmp_path / "gateway.db")
    rows = conn.execute("SELECT seq, event, filing_id FROM audit ORDER BY seq").fetchall()
    conn.close()
    return rows


async def submit_and_deliver(gw, n: int = 1) -> list[str]:
    url = f"http://127.0.0.1:{gw.port}"
    ids = []
    async with aiohttp.ClientSession() as session:
        for i in range(n):
            body = {
                "filing_type": "isf",
                "environment": "cert",
                "reference": f"REF-{i}",
                "filer_code": "XYZ",
                "payload": {"n": i},
            }
            async with session.post(url + "/v1/filings", json=body) as r:
                ids.append((await r.json())["id"])
        for filing_id in ids:
            for _ in range(300):
                async with session.get(f"{url}/v1/filings/{filing_id}") as r:
                    if (await r.json())["status"] == "delivered":
                        break
                await asyncio.sleep(0.02)
    return ids


async def test_every_step_of_a_delivery_and_of_the_process_is_one_row(tmp_path, run_gateway):
    """started, config.loaded, accepted, pending, in_flight, sent, stopped — in order."""
    data = gateway_config(tmp_path, hmac_key="k" * 32)
    gw, stop = await run_gateway(data)
    [filing_id] = await submit_and_deliver(gw)
    await stop()
    events = [(e, f) for _, e, f in trail(tmp_path)]
    assert events == [
        ("gateway.started", None),
        ("config.loaded", None),
        ("filing.accepted", filing_id),
        ("delivery.pending", filing_id),
        ("delivery.in_flight", filing_id),
        ("delivery.sent", filing_id),
        ("gateway.stopped", None),
    ]
    conn = sqlite3.connect(tmp_path / "gateway.db")
    details = json.loads(
        conn.execute("SELECT details FROM audit WHERE event = 'config.loaded'").fetchone()[0]
    )
    conn.close()
    assert details["config_sha256"] == config_hash(gw.cfg)


async def test_checkpoints_are_written_at_start_every_n_rows_and_on_shutdown(tmp_path, run_gateway):
    """With checkpoint_every_rows = 3 the head is signed as rows grow and again at stop."""
    data = gateway_config(
        tmp_path, hmac_key="k" * 32, checkpoint_every_rows=3, checkpoint_every="1h"
    )
    gw, stop = await run_gateway(data)
    await submit_and_deliver(gw, 3)
    directory = checkpoints.CheckpointDir(tmp_path / "checkpoints", key=b"k" * 32)
    running_head = trail(tmp_path)[-1][0]

    def signed_while_running() -> list[int]:
        [chain] = directory.chains()
        return [c.seq for c in directory.load(chain)[0] if c.seq > 2]

    for _ in range(1000):  # the loop signs once 3 rows were added (it looks every second)
        if signed_while_running():
            break
        await asyncio.sleep(0.02)
    [in_between, *_] = signed_while_running()
    assert 2 < in_between <= running_head
    await stop()
    [chain] = directory.chains()
    found, bad = directory.load(chain)
    assert not bad
    seqs = [c.seq for c in found]
    head = trail(tmp_path)[-1][0]
    assert seqs[0] == 2  # at start: gateway.started + config.loaded
    assert seqs[-1] == head > running_head  # on clean shutdown, after gateway.stopped
    assert in_between in seqs[1:-1]  # and at least one in between


async def test_without_a_key_one_is_generated_with_a_warning_and_verify_passes(
    tmp_path, run_gateway, capsys, monkeypatch
):
    """No EDIGW_AUDIT__HMAC_KEY: a 0600 key file appears, a warning is logged, verify is 0."""
    monkeypatch.delenv("EDIGW_AUDIT__HMAC_KEY", raising=False)
    stream = io.StringIO()
    logs.configure("json", "info", stream=stream)
    try:
        gw, stop = await run_gateway(gateway_config(tmp_path))
        await submit_and_deliver(gw, 2)
        await stop()
    finally:
        structlog.reset_defaults()
    key_file = tmp_path / "checkpoints" / checkpoints.KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert "audit.key_generated" in stream.getvalue()
    cfg = tmp_path / "gw.toml"
    cfg.write_text(
        "\n".join(
            [
                f"[{section}]\n" + "\n".join(f"{k} = {toml_value(v)}" for k, v in body.items())
                for section, body in (
                    ("gateway", {"store": f"sqlite:///{tmp_path / 'gateway.db'}"}),
                    ("audit", {"checkpoint_dir": str(tmp_path / "checkpoints")}),
                )
            ]
        )
    )
    code = await anyio.to_thread.run_sync(
        cli.main, ["audit", "verify", "--config", str(cfg), "--json"]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == len(trail(tmp_path))
    assert out["checkpoint_seq"] == out["last_seq"]
