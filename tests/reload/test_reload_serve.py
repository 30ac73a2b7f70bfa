"""``serve`` reloads its config file on SIGHUP and on ``edi-gateway reload``; a bad file is
refused, naming the key, and the gateway goes on with the config it had."""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import base_config, free_port
from tests.test_process import ROOT, spawn_serve, write_toml
from tests.test_serve_signals import stderr_until

pytestmark = pytest.mark.slow


async def cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli.main",
        *args,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_sighup_and_the_cli_reload_the_file_and_refuse_a_fixed_key(tmp_path: Path) -> None:
    """SIGHUP with new routes → config.reloaded; a changed listen address → refused,
    naming gateway.listen; `edi-gateway reload` applies and refuses the same way."""
    port = free_port()
    data = base_config(tmp_path)
    data["gateway"] = {**data["gateway"], "listen": f"127.0.0.1:{port}", "log_format": "json"}
    config_file = write_toml(tmp_path / "gateway.toml", data)
    proc = await spawn_serve(config_file)
    url = f"http://127.0.0.1:{port}"
    try:
        await stderr_until(proc, "gateway.listening")
        good = copy.deepcopy(data)
        good["routes"] = [{"filing_types": ["isf"], "adapters": ["outbox"]}]
        write_toml(config_file, good)
        proc.send_signal(signal.SIGHUP)
        [*_, reloaded] = await stderr_until(proc, "config.reloaded")
        assert reloaded["changed"] == ["routes"]
        async with aiohttp.ClientSession() as session:
            entry = {"filing_type": "entry", "environment": "cert", "reference": "E-1",
                     "filer_code": "XYZ", "payload": {"a": 1}}  # fmt: skip
            async with session.post(f"{url}/v1/filings", json=entry) as r:
                assert r.status == 422  # unroutable under the reloaded routes

        bad = copy.deepcopy(good)
        bad["gateway"]["listen"] = "127.0.0.1:1"
        write_toml(config_file, bad)
        proc.send_signal(signal.SIGHUP)
        [*_, refused] = await stderr_until(proc, "config.reload_refused")
        assert refused["key"] == "gateway.listen"

        code, out, err = await cli("reload", "--url", url, "--config", str(config_file))
        assert code == 4, (out, err)
        assert "gateway.listen" in err and "restart" in err

        write_toml(config_file, data)  # back to the routes it started with
        code, out, err = await cli("reload", "--url", url, "--config", str(config_file))
        assert code == 0, (out, err)
        assert "reloaded:" in out and "routes" in out
        proc.send_signal(signal.SIGTERM)
        await stderr_until(proc, "gateway.stopped")
        assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
