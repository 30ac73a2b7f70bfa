"""`serve` handles SIGTERM from its first moment: a pod stopped just as it starts drains cleanly."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import anyio
import pytest

from tests.conftest import base_config
from tests.test_process import spawn_serve, write_toml


async def stderr_until(proc: asyncio.subprocess.Process, event: str) -> list[dict]:
    """JSON log lines up to and including the one whose event is ``event``."""
    assert proc.stderr is not None
    seen: list[dict] = []
    with anyio.fail_after(60):
        while raw := await proc.stderr.readline():
            try:
                seen.append(json.loads(raw))
            except ValueError:
                continue
            if seen[-1].get("event") == event:
                return seen
    raise AssertionError(f"stderr ended before {event}: {[e.get('event') for e in seen]}")


@pytest.mark.slow
async def test_sigterm_right_after_listening_is_a_graceful_stop(tmp_path: Path) -> None:
    """SIGTERM the moment gateway.listening is logged: gateway.stopped, exit 0, not killed."""
    data = base_config(tmp_path)
    data["gateway"] = {**data["gateway"], "log_format": "json"}
    config_file = write_toml(tmp_path / "gateway.toml", data)
    proc = await spawn_serve(config_file)
    try:
        await stderr_until(proc, "gateway.listening")
        proc.send_signal(signal.SIGTERM)  # before the dispatcher and the rest have started
        events = [e.get("event") for e in await stderr_until(proc, "gateway.stopped")]
        assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert "gateway.signal" in events
