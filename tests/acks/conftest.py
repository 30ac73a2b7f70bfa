"""Fixtures for acks, callbacks and X12: an inbox gateway config, ack files, a signed receiver."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.conftest import base_config

SECRET = "whsec_" + base64.b64encode(b"acks-test-secret-0123456789abcdef").decode()
SECRET_ENV = {"EDIGW_TEST_CALLBACK_SECRET": SECRET}


def inbox_config(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    """base_config whose filedrop outbox also reads acks from tmp_path/inbox."""
    data = base_config(tmp_path, **sections)
    data["adapters"]["outbox"]["inbox"] = str(tmp_path / "inbox")
    data["adapters"]["outbox"]["inbox_poll"] = "50ms"
    data.setdefault("acks", {}).setdefault("overdue_scan", "100ms")
    return data


def drop(inbox: Path, name: str, content: str | dict[str, Any]) -> Path:
    """Write an ack file atomically into the inbox, as a VAN client would."""
    inbox.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content)
    tmp = inbox / f".{name}.tmp"
    tmp.write_text(text)
    os.replace(tmp, inbox / name)
    return inbox / name


async def eventually(check: Any, timeout: float = 10.0) -> Any:
    """Poll an async or sync predicate until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {timeout}s")
        await asyncio.sleep(0.03)


@dataclass
class SignedReceiver:
    """A loopback webhook receiver verifying Standard Webhooks signatures; scripted to fail."""

    url: str = ""
    fail_first: int = 0
    attempts: list[dict[str, Any]] = field(default_factory=list)
    verified: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
async def signed_receiver() -> AsyncIterator[SignedReceiver]:
    rec = SignedReceiver()
    hook = Webhook(SECRET)

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        rec.attempts.append({"headers": dict(request.headers), "body": body})
        if len(rec.attempts) <= rec.fail_first:
            return web.Response(status=500, text="scripted failure")
        try:
            event = hook.verify(body, dict(request.headers))
        except WebhookVerificationError:
            return web.Response(status=401, text="bad signature")
        rec.verified.append({"id": request.headers["webhook-id"], "event": event})
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}/hooks/filings"
    yield rec
    await runner.cleanup()


def callbacks_section(host_port: str, **extra: Any) -> dict[str, Any]:
    return {
        "allowed_hosts": [host_port],
        "subscribers": {"tms": {"hosts": [host_port], "secret_env": "EDIGW_TEST_CALLBACK_SECRET"}},
        "retry": {"max_attempts": 5, "initial_delay": "50ms", "max_delay": "200ms", "jitter": "0s"},
        **extra,
    }
