"""Helpers of the multi-process tests: a recording HTTP receiver and ``serve`` subprocesses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from aiohttp import web

APP_NAME = "edigw-under-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    idempotency_key: str
    filing_id: str
    body: bytes


@dataclass
class Receiver:
    """A loopback HTTP endpoint that records every request, in arrival order."""

    got: list[Received] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.got.append(
            Received(request.headers["Idempotency-Key"], request.headers["X-EDI-Filing-Id"], body)
        )
        return web.json_response({"ok": True})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/ace", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def write_config(path: Path, *, dsn: str, receiver_port: int, concurrency: int = 16) -> Path:
    """A gateway config on ``dsn``; its audit checkpoints stay beside it, per test."""
    sep = "&" if "?" in dsn else "?"
    path.write_text(
        f"""
[gateway]
listen = "127.0.0.1:0"
store = "{dsn}{sep}application_name={APP_NAME}"
lease = "2s"
scan_interval = "500ms"
shutdown_grace = "1s"
log_format = "json"
log_level = "warning"

[auth]
mode = "none"

[retry]
max_attempts = 1000
initial_delay = "100ms"
max_delay = "1s"
jitter = "100ms"

[adapters.ace]
type = "http"
url = "http://127.0.0.1:{receiver_port}/ace"
concurrency = {concurrency}
timeout = "5s"

[[routes]]
filing_types = ["*"]
adapters = ["ace"]

[audit]
checkpoint_dir = "{path.parent / "audit-checkpoints"}"
"""
    )
    return path


@dataclass
class Gateway:
    """One ``edi-gateway serve`` subprocess on a fixed port."""

    config: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "EDIGW_GATEWAY__LISTEN": f"127.0.0.1:{self.port}"}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli.main", "serve", "--config", str(self.config)],
                env=env,
                stdout=log,
                stderr=log,
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    async def wait_ready(self, session: aiohttp.ClientSession, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited {self.proc.returncode}: {self.log_tail()}")
            try:
                async with session.get(f"{self.url}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await anyio.sleep(0.1)
        raise AssertionError(f"gateway on {self.port} not ready: {self.log_tail()}")

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def events(n: int, keys: int, *, prefix: str = "R") -> list[dict[str, Any]]:
    """n filing events spread round-robin over ``keys`` ordering keys, each with a key."""
    return [
        {
            "filing_type": "isf",
            "environment": "cert",
            "reference": f"{prefix}{i}",
            "filer_code": "ABC",
            "ordering_key": f"K{i % keys}",
            "idempotency_key": f"{prefix}-idem-{i}",
            "payload": {"n": i},
        }
        for i in range(n)
    ]


async def post_batch(
    session: aiohttp.ClientSession, gateways: list[Gateway], batch: list[dict[str, Any]], start: int
) -> list[str]:
    """POST a batch to the first live gateway (from ``start``); retry until accepted.

    The events carry idempotency keys, so a batch posted again after a lost response
    returns the filings of the first acceptance.
    """
    i = start
    while True:
        g = gateways[i % len(gateways)]
        i += 1
        try:
            async with session.post(
                f"{g.url}/v1/filings/batch", data=json.dumps(batch).encode()
            ) as resp:
                if resp.status == 200:
                    body = await resp.json()
                    results = body["results"]
                    refused = [r["error"] for r in results if "error" in r]
                    assert not refused, refused[:3]
                    return [r["id"] for r in results]
        except (aiohttp.ClientError, TimeoutError):
            pass
        await anyio.sleep(0.05)
