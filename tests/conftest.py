"""Shared fixtures: real SQLite files, a real gateway on loopback, a real HTTP receiver."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway import config
from gateway.server import Gateway

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(autouse=True)
def _logs_to_stderr() -> Iterator[None]:
    """Gateway logs go to fd 2 as JSON lines, as in production; stdout stays for output.

    Set again after each test, because a CLI call inside a test configures logging
    onto capsys's stream, which is closed when the test ends.
    """
    import sys

    from gateway import logs

    logs.configure("json", "debug", stream=sys.__stderr__)
    yield
    logs.configure("json", "debug", stream=sys.__stderr__)


def require_services() -> bool:
    """On CI (EDIGW_REQUIRE_SERVICES=1) a missing service fails the test instead of skipping."""
    return os.environ.get("EDIGW_REQUIRE_SERVICES") == "1"


def service_missing(reason: str) -> None:
    if require_services():
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_config(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    """A config dict: SQLite in tmp_path, a filedrop outbox, one catch-all route."""
    data: dict[str, Any] = {
        "gateway": {
            "listen": "127.0.0.1:0",
            "store": f"sqlite:///{tmp_path / 'gateway.db'}",
            "lease": "5s",
            "scan_interval": "200ms",
            "shutdown_grace": "2s",
        },
        "retry": {
            "max_attempts": 5,
            "initial_delay": "50ms",
            "max_delay": "1s",
            "max_age": "1h",
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


def example(name: str = "isf", **changes: Any) -> dict[str, Any]:
    event = json.loads((EXAMPLES / f"{name}.json").read_text())
    event = copy.deepcopy(event)
    event.pop("idempotency_key", None)
    event.update(changes)
    return event


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A gateway's store URL on each backend: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gateway.db'}"
        return
    from tests.store.conftest import fresh_schema

    async with fresh_schema() as dsn:
        yield dsn


@dataclass
class Running:
    """A gateway started in-process on a free loopback port."""

    gateway: Gateway
    url: str
    session: aiohttp.ClientSession
    task: asyncio.Task[None]
    stop_event: Any

    async def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        async with self.session.post(self.url + path, json=body, **kw) as r:
            return r.status, await r.json()

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.session.get(self.url + path, **kw) as r:
            return r.status, await r.json()

    async def wait_for(self, filing_id: str, status: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        body: Any = None
        while asyncio.get_running_loop().time() < deadline:
            _, body = await self.get(f"/v1/filings/{filing_id}")
            if body.get("status") == status:
                return dict(body)
            await asyncio.sleep(0.02)
        raise AssertionError(f"{filing_id} not {status} within {timeout}s: {body}")

    async def stop(self) -> None:
        self.stop_event.set()
        await asyncio.wait_for(self.task, 15)


@pytest.fixture
async def start_gateway() -> AsyncIterator[Callable[..., Any]]:
    """Factory: ``await start_gateway(config_dict)`` → a Running gateway, stopped at teardown."""
    import anyio

    started: list[Running] = []
    session = aiohttp.ClientSession()

    async def _start(data: dict[str, Any], **kw: Any) -> Running:
        cfg = config.parse_config(data, {})
        gw = Gateway(cfg, **kw)
        stop = anyio.Event()
        task = asyncio.create_task(gw.run(stop=stop))
        deadline = asyncio.get_running_loop().time() + 30  # a liveness bound
        while not (gw.port is not None and gw.dispatcher.running):
            if task.done():
                task.result()
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("gateway did not start")
            await asyncio.sleep(0.01)
        running = Running(gw, f"http://127.0.0.1:{gw.port}", session, task, stop)
        started.append(running)
        return running

    yield _start
    for r in started:
        if not r.task.done():
            await r.stop()
    await session.close()


@dataclass
class Receiver:
    """A loopback HTTP receiver that records every request and can be scripted to fail."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    #: statuses to answer with, in order, before answering 200
    script: list[int] = field(default_factory=list)
    headers_for_failure: dict[str, str] = field(default_factory=dict)
    hang: asyncio.Event | None = None

    @property
    def keys(self) -> list[str]:
        return [r["headers"].get("Idempotency-Key", "") for r in self.requests]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        rec.requests.append(
            {
                "headers": dict(request.headers),
                "body": body,
                "at": asyncio.get_running_loop().time(),
            }
        )
        if rec.hang is not None:
            await rec.hang.wait()
        if rec.script:
            status = rec.script.pop(0)
            return web.Response(
                status=status, text=f"scripted {status}", headers=rec.headers_for_failure
            )
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
    if rec.hang is not None:
        rec.hang.set()
    await runner.cleanup()
