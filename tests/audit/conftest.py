"""Fixtures of the audit tests: the HMAC key in the environment, a gateway in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest
from audit_helpers import KEY

from gateway import config
from gateway.server import Gateway


@pytest.fixture
def hmac_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """The checkpoint key in EDIGW_AUDIT__HMAC_KEY, as in production."""
    monkeypatch.setenv("EDIGW_AUDIT__HMAC_KEY", KEY)
    return KEY


@pytest.fixture
async def run_gateway() -> AsyncIterator[Callable[..., Any]]:
    """Factory: ``gw, stop = await run_gateway(config_dict)``; stopped at teardown."""
    running: list[tuple[asyncio.Task[None], anyio.Event]] = []

    async def _start(data: dict[str, Any], **kw: Any) -> Any:
        cfg = config.parse_config(data, {})
        gw = Gateway(cfg, **kw)
        stop = anyio.Event()
        task = asyncio.create_task(gw.run(stop=stop))
        for _ in range(500):
            if gw.port is not None and gw.dispatcher.running:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        running.append((task, stop))

        async def _stop() -> None:
            stop.set()
            await asyncio.wait_for(task, 15)

        return gw, _stop

    yield _start
    for task, stop in running:
        if not task.done():
            stop.set()
            await asyncio.wait_for(task, 15)
