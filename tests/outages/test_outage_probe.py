"""A half-open breaker's probe and messages that make the receiver fail (the lifecycle
issue's third sequence): no message can hold an adapter closed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.test_lifecycle_sequences import http_config, isf, until


@pytest.fixture
async def picky_receiver() -> AsyncIterator[Any]:
    """An HTTP receiver that answers 500 to any body holding POISON (a receiver-side bug
    one message triggers) and 200 to the rest; it records the reference of each request."""
    seen: list[tuple[str, int]] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        status = 500 if b"POISON" in body else 200
        seen.append((request.headers["X-EDI-Filing-Id"], status))
        return web.Response(status=status, text="ok" if status == 200 else "boom")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/ace", seen
    await runner.cleanup()


async def test_a_half_open_probe_never_picks_a_delivery_that_failed_a_probe(
    store_url: str, tmp_path: Path, picky_receiver: Any, live_gateway: Any
) -> None:
    """Three deliveries whose message makes the receiver fail open the breaker; each
    half-open probe then picks a delivery that never failed a probe, so the healthy ones
    behind get their turn, the breaker closes and they are delivered (the poisoned ones
    keep their own retries, spending attempts)."""
    url, seen = picky_receiver
    data = http_config(
        tmp_path,
        url,
        store_url,
        breaker={"failure_threshold": 3, "cooldown": "10s", "max_cooldown": "1h"},
        retry={
            "max_attempts": 4,
            "initial_delay": "1h",
            "max_delay": "2h",
            "max_age": "72h",
            "jitter": "0s",
        },
    )
    data["gateway"]["lease"] = "3h"  # the clock jumps 2h a round: no lease runs out
    live = await live_gateway(data)
    poisoned = []
    for i in range(3):
        _, body = await live.call("POST", "/v1/filings", isf(f"ISF-POISON-{i}"))
        poisoned.append(body["id"])

    async def all_failed_once() -> bool:
        return len(seen) >= 3

    await until(all_failed_once, "the three poisoned sends failed")

    async def breaker_open() -> bool:
        _, body = await live.call("GET", "/v1/adapters")
        [ace] = [a for a in body["adapters"] if a["name"] == "ace"]
        return bool(ace["breaker"]["state"] == "open")

    await until(breaker_open, "the breaker opened on the third failure")
    healthy = []
    for i in range(5):
        _, body = await live.call("POST", "/v1/filings", isf(f"ISF-FINE-{i}"))
        healthy.append(body["id"])

    async def delivered() -> int:
        count = 0
        for filing_id in healthy:
            _, view = await live.call("GET", f"/v1/filings/{filing_id}")
            count += view["status"] == "delivered"
        return count

    rounds = 0
    while await delivered() < len(healthy):
        assert rounds < 30, f"the healthy filings never got through: {seen}"
        before = len(seen)
        live.clock.advance(2 * 3600)  # past any cool-down and retry time
        live.gateway.dispatcher.wake()

        async def something_sent(before: int = before) -> bool:
            return len(seen) > before or await delivered() == len(healthy)

        await until(something_sent, "a probe or a send after the cool-down")
        rounds += 1
    # the probes after the breaker opened: each poisoned delivery once, then a healthy one
    assert [status for _, status in seen[3:7]] == [500, 500, 500, 200], seen
    assert sorted(fid for fid, _ in seen[3:6]) == sorted(poisoned), seen
