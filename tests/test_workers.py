"""Speed without giving up a guarantee: ``[gateway] workers = N`` and filedrop's shared
directory fsync."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
from pathlib import Path

import aiohttp
import anyio
import pytest

from adapters import filedrop
from gateway import models
from tests.conftest import base_config, example, free_port
from tests.test_process import spawn_serve, write_toml
from tests.test_serve_signals import stderr_until


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is not serving
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
async def test_two_serve_processes_share_the_port_the_work_and_the_stop(tmp_path: Path) -> None:
    """workers = 2: a second serve process listens on the same port; filings posted on
    many connections are each accepted once and delivered once; SIGTERM to the first
    stops both gracefully (exit 0)."""
    port = free_port()
    data = base_config(tmp_path)
    data["gateway"] = {
        **data["gateway"],
        "listen": f"127.0.0.1:{port}",
        "log_format": "json",
        "workers": 2,
    }
    config_file = write_toml(tmp_path / "gateway.toml", data)
    proc = await spawn_serve(config_file)
    worker_pid = None
    try:
        seen = await stderr_until(proc, "gateway.listening")
        seen += await stderr_until(proc, "gateway.listening")
        listening = [e for e in seen if e.get("event") == "gateway.listening"]
        assert sorted(e["worker"] for e in listening) == [0, 1]
        assert {e["listen"] for e in listening} == {f"127.0.0.1:{port}"}
        assert len({e["owner"] for e in listening}) == 2  # two lease owners
        [started] = [e for e in seen if e.get("event") == "gateway.worker_started"]
        worker_pid = started["pid"]

        n = 40
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True)  # a new connection each time
        ) as s:

            async def post(i: int) -> int:
                body = example(reference=f"WRK-{i}", idempotency_key=f"wrk-{i}")
                async with s.post(f"http://127.0.0.1:{port}/v1/filings", json=body) as r:
                    return r.status

            statuses = await asyncio.gather(*(post(i) for i in range(n)))
        assert statuses == [202] * n

        def count(sql: str) -> int:
            db = sqlite3.connect(tmp_path / "gateway.db")
            try:
                return int(db.execute(sql).fetchone()[0])
            finally:
                db.close()

        with anyio.fail_after(30):
            while count("SELECT count(*) FROM deliveries WHERE state = 'delivered'") < n:
                await anyio.sleep(0.1)
        assert count("SELECT count(*) FROM filings") == n
        assert count("SELECT count(*) FROM deliveries") == n
        assert len(list((tmp_path / "outbox").glob("*.json"))) == n

        proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(60):
            assert await proc.wait() == 0
        assert not _alive(worker_pid)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if worker_pid is not None and _alive(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)


def _message(i: int) -> models.OutboundMessage:
    return models.OutboundMessage(
        delivery_id=f"dlv_{i:04d}",
        filing_id=f"fil_{i:04d}",
        adapter="drop",
        filing_type=models.FilingType.ISF,
        environment=models.Environment.CERT,
        reference=f"R{i}",
        filer_code="XYZ",
        attempt=1,
        content_type="application/json",
        body=json.dumps({"n": i}).encode(),
        metadata={},
    )


async def test_filedrop_concurrent_sends_share_directory_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fifty sends at once: fewer directory fsyncs than files, and each receipt only after
    a directory fsync that started after that file's rename."""
    events: list[tuple[str, str]] = []
    real_replace, real_sync = os.replace, filedrop._fsync_dir

    def replace(src: os.PathLike[str] | str, dst: os.PathLike[str] | str) -> None:
        real_replace(src, dst)
        events.append(("renamed", Path(dst).name))

    def sync(directory: Path) -> None:
        events.append(("sync_start", ""))
        real_sync(directory)
        events.append(("sync_end", ""))

    monkeypatch.setattr(filedrop.os, "replace", replace)
    monkeypatch.setattr(filedrop, "_fsync_dir", sync)
    adapter = filedrop.FiledropAdapter(
        name="drop", options=filedrop.FiledropOptions(directory=tmp_path / "out")
    )
    await adapter.open()
    receipts: dict[str, int] = {}

    async def send(i: int) -> None:
        receipt = await adapter.send(_message(i))
        receipts[receipt.transport_id] = len(events)  # what had happened when it returned

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(send, i)
    assert len(receipts) == 50
    starts = [k for k, (kind, _) in enumerate(events) if kind == "sync_start"]
    ends = [k for k, (kind, _) in enumerate(events) if kind == "sync_end"]
    assert 1 <= len(starts) < 50
    for name, seen in receipts.items():
        renamed = events.index(("renamed", name))
        # a directory fsync that started after the rename and ended before the receipt
        assert any(renamed < a and b < seen for a, b in zip(starts, ends, strict=True)), name
        assert (tmp_path / "out" / name).read_bytes()
