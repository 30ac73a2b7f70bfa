"""Fixtures of the outage tests: a gateway on loopback driven by a ManualClock, a receiver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from gateway import config
from gateway.clock import ManualClock
from gateway.server import Gateway

#: a Wednesday, 12:00 in New York: no shipped calendar window is open
WEDNESDAY_NOON = datetime(2026, 1, 7, 17, 0, tzinfo=UTC)


def outage_config(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    """SQLite in tmp_path, one filedrop adapter ``outbox``, one catch-all route."""
    data: dict[str, Any] = {
        "gateway": {
            "listen": "127.0.0.1:0",
            "store": f"sqlite:///{tmp_path / 'gateway.db'}",
            "lease": "5s",
            "scan_interval": "50ms",
            "shutdown_grace": "2s",
        },
        "retry": {
            "max_attempts": 5,
            "initial_delay": "1s",
            "max_delay": "1m",
            "max_age": "72h",
            "jitter": "0s",
        },
        "adapters": {
            "outbox": {"type": "filedrop", "directory": str(tmp_path / "outbox"), "fsync": False}
        },
        "routes": [{"filing_types": ["*"], "adapters": ["outbox"]}],
    }
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(name), dict):
            data[name] = {**data[name], **value}
        else:
            data[name] = value
    return data


def event(reference: str, **changes: Any) -> dict[str, Any]:
    """A small ISF filing event."""
    return {
        "filing_type": "isf",
        "environment": "production",
        "reference": reference,
        "filer_code": "ABC1",
        "payload": {"importer": "ACME", "bill_of_lading": reference},
        **changes,
    }


@dataclass
class Live:
    """A gateway running in-process on a free loopback port, on a ManualClock."""

    gateway: Gateway
    clock: ManualClock
    url: str
    session: aiohttp.ClientSession
    task: asyncio.Task[None]
    stop_event: anyio.Event

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, self.url + path, json=body) as r:
            return r.status, await r.json()

    #: dispatcher cycles (``dispatch_once`` calls) completed so far
    cycles: int = 0

    async def advance(self, seconds: float) -> None:
        """Move the clock and wait until the dispatcher has looked at the new time: one
        whole cycle (claims, then the deadline scan) begun after the move, however long the
        machine takes — not a fixed sleep that proves nothing on a slow one."""
        self.clock.advance(seconds)
        target = self.cycles + 2  # the cycle under way may have read the old time
        deadline = asyncio.get_running_loop().time() + 30
        while self.cycles < target:
            assert asyncio.get_running_loop().time() < deadline, "the dispatcher stalled"
            self.gateway.dispatcher.wake()
            await asyncio.sleep(0.005)  # a poll interval

    async def wait_status(self, filing_id: str, status: str, timeout: float = 10.0) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        body: Any = None
        while asyncio.get_running_loop().time() < deadline:
            _, body = await self.call("GET", f"/v1/filings/{filing_id}")
            if body.get("status") == status:
                return body
            await asyncio.sleep(0.02)
        raise AssertionError(f"{filing_id} not {status} within {timeout}s: {body}")


@pytest.fixture
async def live_gateway() -> AsyncIterator[Callable[..., Any]]:
    """Factory: ``await live_gateway(config_dict)`` → a ``Live`` gateway, stopped at teardown."""
    started: list[Live] = []
    session = aiohttp.ClientSession()

    async def _start(data: dict[str, Any], *, start: datetime = WEDNESDAY_NOON) -> Live:
        clock = ManualClock(start)
        gw = Gateway(config.parse_config(data, {}), clock=clock)
        stop = anyio.Event()
        task = asyncio.create_task(gw.run(stop=stop))
        for _ in range(500):
            if gw.port is not None and gw.dispatcher.running:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        live = Live(gw, clock, f"http://127.0.0.1:{gw.port}", session, task, stop)
        original = gw.dispatcher.dispatch_once

        async def counted(sends: Any) -> int:
            try:
                return await original(sends)
            finally:
                live.cycles += 1

        gw.dispatcher.dispatch_once = counted  # type: ignore[method-assign]
        started.append(live)
        return live

    yield _start
    for live in started:
        live.stop_event.set()
        await asyncio.wait_for(live.task, 15)
    await session.close()


@dataclass
class AceReceiver:
    """A loopback HTTP receiver: down (503) until ``down_until`` on ``clock``, then 200."""

    clock: ManualClock | None = None
    down_until: datetime | None = None
    retry_after: str | None = None
    url: str = ""
    #: (simulated time, status, filing id, attempt)
    log: list[tuple[datetime, int, str, int]] = field(default_factory=list)

    def ok(self) -> list[tuple[datetime, int, str, int]]:
        return [r for r in self.log if r[1] == 200]


@pytest.fixture
async def ace_receiver() -> AsyncIterator[AceReceiver]:
    rec = AceReceiver()

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        now = rec.clock.now() if rec.clock else datetime.now(UTC)
        down = rec.down_until is not None and now < rec.down_until
        status = 503 if down else 200
        rec.log.append(
            (now, status, request.headers["X-EDI-Filing-Id"], int(request.headers["X-EDI-Attempt"]))
        )
        if down:
            headers = {"Retry-After": rec.retry_after} if rec.retry_after else {}
            return web.Response(status=503, text="ACE unavailable", headers=headers)
        return web.json_response({"received": True})

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}/ace"
    yield rec
    await runner.cleanup()
