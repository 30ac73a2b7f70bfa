"""Harness of the reliability suite: ``serve`` subprocesses, a recording receiver, checks.

Everything here observes real state: the receiver records every request it got (with its
``Idempotency-Key``), the checks read the database, the processes are real ``serve``
subprocesses killed with real signals. Every subprocess log file is registered with
``logscan`` so the session-end scan reads it.
"""

from __future__ import annotations

import collections
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from aiohttp import web

from tests.reliability import logscan

ROOT = Path(__file__).resolve().parents[2]


def scale(name: str, ci: int) -> int:
    """A figure of a row: its CI size, or ``EDIGW_SOAK_<NAME>`` (``make soak``)."""
    return int(os.environ.get(f"EDIGW_SOAK_{name.upper()}", str(ci)))


@dataclass
class Got:
    idempotency_key: str
    filing_id: str
    attempt: int
    at: float


@dataclass
class Receiver:
    """Loopback HTTP receiver recording every request in arrival order; can hang or fail."""

    got: list[Got] = field(default_factory=list)
    port: int = 0
    #: answer this status (e.g. 503) instead of 200 while set
    fail_with: int | None = None
    #: seconds to sleep before answering
    delay_s: float = 0.0
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.got.append(
            Got(
                request.headers["Idempotency-Key"],
                request.headers["X-EDI-Filing-Id"],
                int(request.headers.get("X-EDI-Attempt", "0")),
                time.monotonic(),
            )
        )
        if self.delay_s:
            await anyio.sleep(self.delay_s)
        if self.fail_with is not None:
            return web.Response(status=self.fail_with, text="receiver down")
        return web.json_response({"ok": True})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/ace", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ace"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def config_text(
    *,
    store: str,
    receiver_url: str,
    lease: str = "1s",
    concurrency: int = 8,
    timeout: str = "5s",
    grace: str = "2s",
    extra: str = "",
) -> str:
    return f"""
[gateway]
listen = "127.0.0.1:0"
store = "{store}"
lease = "{lease}"
scan_interval = "200ms"
shutdown_grace = "{grace}"
log_format = "json"
log_level = "info"

[auth]
mode = "none"

[retry]
max_attempts = 1000
initial_delay = "100ms"
max_delay = "1s"
jitter = "50ms"

[adapters.ace]
type = "http"
url = "{receiver_url}"
concurrency = {concurrency}
timeout = "{timeout}"

[[routes]]
filing_types = ["*"]
adapters = ["ace"]
{extra}
"""


@dataclass
class Serve:
    """One ``edi-gateway serve`` subprocess on a fixed port; its log is scanned at the end."""

    config: Path
    port: int
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        logscan.register_file(self.log)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "EDIGW_GATEWAY__LISTEN": f"127.0.0.1:{self.port}",
            **self.env,
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli.main", "serve", "--config", str(self.config)],
                env=env,
                stdout=out,
                stderr=out,
            )
        self.starts += 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def terminate(self, timeout_s: float = 15) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    async def wait_ready(self, session: aiohttp.ClientSession, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive:
                raise AssertionError(f"serve exited: {self.log_tail()}")
            try:
                async with session.get(f"{self.url}/readyz") as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await anyio.sleep(0.05)
        raise AssertionError(f"serve on {self.port} not ready: {self.log_tail()}")

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def events(n: int, keys: int, *, prefix: str = "R") -> list[dict[str, Any]]:
    """n ISF events over ``keys`` ordering keys, each with its own idempotency key."""
    return [
        {
            "filing_type": "isf",
            "environment": "cert",
            "reference": f"{prefix}{i}",
            "filer_code": "ABC",
            "ordering_key": f"{prefix}K{i % keys}",
            "idempotency_key": f"{prefix}-idem-{i}",
            "payload": {"n": i},
        }
        for i in range(n)
    ]


def check_history(got: list[Got], accepted: list[str], key_of: dict[str, str]) -> tuple[int, int]:
    """The Jepsen check: every accepted filing reached the receiver; a filing's repeats all
    carry one ``Idempotency-Key``; first arrivals per ordering key are in acceptance order.

    Returns (requests, duplicates).
    """
    keys_by_filing: dict[str, set[str]] = collections.defaultdict(set)
    first_seen: list[str] = []
    for r in got:
        if r.filing_id not in keys_by_filing:
            first_seen.append(r.filing_id)
        keys_by_filing[r.filing_id].add(r.idempotency_key)
    missing = set(accepted) - set(keys_by_filing)
    assert not missing, f"{len(missing)} accepted filings never reached the receiver"
    assert set(keys_by_filing) == set(accepted), "the receiver got filings nobody accepted"
    assert all(len(k) == 1 for k in keys_by_filing.values()), "a repeat changed its key"
    sent: dict[str, list[str]] = collections.defaultdict(list)
    want: dict[str, list[str]] = collections.defaultdict(list)
    for fid in first_seen:
        sent[key_of[fid]].append(fid)
    for fid in accepted:
        want[key_of[fid]].append(fid)
    inversions = sum(1 for k in want if sent[k] != want[k])
    assert inversions == 0, f"{inversions} ordering keys delivered out of acceptance order"
    return len(got), len(got) - len(set(keys_by_filing))


def sqlite_states(db: Path) -> dict[str, int]:
    with sqlite3.connect(db, timeout=10) as conn:
        return dict(conn.execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state"))


def sqlite_integrity(db: Path) -> str:
    with sqlite3.connect(db, timeout=10) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


async def verify_audit(store_url: str) -> Any:
    """Walk the audit chain through the store (both backends); returns the VerifyResult."""
    from gateway.audit import chain as audit
    from gateway.store import open as store_open

    store = store_open.open_store(store_url)
    await store.open()
    try:
        return audit.verify_rows([r async for r in store.audit_rows()])
    finally:
        await store.close()


async def post_batch(
    session: aiohttp.ClientSession, gateways: list[Serve], batch: list[dict[str, Any]], start: int
) -> list[str]:
    """POST a batch to the first live gateway from ``start``; resend until a 200.

    The events carry idempotency keys, so a batch resent after a lost response returns the
    filings of its first acceptance.
    """
    i = start
    while True:
        g = gateways[i % len(gateways)]
        i += 1
        try:
            async with session.post(f"{g.url}/v1/filings/batch", json=batch) as resp:
                if resp.status == 200:
                    results = (await resp.json())["results"]
                    refused = [r["error"] for r in results if "error" in r]
                    assert not refused, refused[:3]
                    return [r["id"] for r in results]
        except (aiohttp.ClientError, TimeoutError):
            pass
        await anyio.sleep(0.05)
