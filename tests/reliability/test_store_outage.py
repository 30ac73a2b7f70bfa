"""PostgreSQL away for longer than the retry window (issue 16): through a TCP proxy the test
controls, the API answers fast ``503 store_unavailable`` with ``Retry-After``, ``/readyz``
names the store, and when the database is back the gateway recovers without a restart and
every filing is stored and delivered exactly once."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.conftest import base_config, example
from tests.reliability.faultproxy import FaultProxy
from tests.store.conftest import fresh_schema

#: [gateway] store_timeout of the gateway under test: the retry window of one call
STORE_TIMEOUT_S = 1.0
#: a 503 must come within this: a connect or a statement, then at most one retry window
FAST_S = 3 * STORE_TIMEOUT_S + 1.0
BEFORE, DURING = 10, 6


def through(dsn: str, port: int) -> str:
    """``dsn`` with its host and port replaced by the proxy's."""
    parts = urlsplit(dsn)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def submit_until_stored(gw: Any, event: dict[str, Any], deadline: float) -> dict[str, Any]:
    """What a well-behaved client does: resend (same idempotency key) after each 503."""
    while True:
        status, body = await gw.post("/v1/filings", event)
        if status in (200, 202):
            return dict(body)
        assert status == 503, body
        assert time.monotonic() < deadline, "the gateway did not recover"
        await asyncio.sleep(0.1)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(300)
async def test_postgres_outage_gives_fast_503s_then_recovers_losing_and_doubling_nothing(
    tmp_path, start_gateway
):
    """Database blackholed past the retry window: each call 503 + Retry-After within FAST_S,
    /readyz 503 naming the store; healed: recovers alone, 0 lost, 0 doubled."""
    async with fresh_schema() as dsn:
        host = urlsplit(dsn)
        proxy = FaultProxy(host.hostname or "127.0.0.1", host.port or 5432)
        await proxy.start()
        try:
            gw = await start_gateway(
                base_config(
                    tmp_path,
                    gateway={
                        "store": through(dsn, proxy.port),
                        "store_timeout": f"{STORE_TIMEOUT_S}s",
                    },
                )
            )
            events = [example(reference=f"OUT-{n}", idempotency_key=f"k-{n}") for n in range(16)]
            ids = set()
            for event in events[:BEFORE]:
                status, body = await gw.post("/v1/filings", event)
                assert status == 202, body
                ids.add(body["id"])

            proxy.mode = "blackhole"  # the database stops answering; sockets stay open
            outage_started = time.monotonic()
            refused: list[dict[str, Any]] = []
            for event in events[BEFORE : BEFORE + DURING]:
                started = time.monotonic()
                async with gw.session.post(gw.url + "/v1/filings", json=event) as r:
                    body = await r.json()
                    took = time.monotonic() - started
                    assert r.status == 503, body
                    assert body["error"]["code"] == "store_unavailable"
                    assert int(r.headers["Retry-After"]) >= 1
                assert took < FAST_S, f"a 503 took {took:.1f}s"
                refused.append(event)
            started = time.monotonic()
            async with gw.session.get(gw.url + "/readyz") as r:
                ready = await r.json()
                assert r.status == 503 and int(r.headers["Retry-After"]) >= 1
            assert time.monotonic() - started < FAST_S
            assert ready["store"].startswith("postgresql://") and "store" in ready["failing"]
            outage_s = time.monotonic() - outage_started
            assert outage_s > 2 * STORE_TIMEOUT_S  # longer than the retry window

            proxy.mode = "pass"  # back: no restart, no operator
            deadline = time.monotonic() + 60
            for event in refused:
                body = await submit_until_stored(gw, event, deadline)
                ids.add(body["id"])
            for event in events[:BEFORE]:  # resending the early ones changes nothing
                status, body = await gw.post("/v1/filings", event)
                assert status == 200 and body["id"] in ids
            for filing_id in ids:
                await gw.wait_for(filing_id, "delivered", timeout=60)
            status, ready = await gw.get("/readyz")
            assert status == 200, ready
        finally:
            await proxy.stop()

        conn = await asyncpg.connect(dsn)
        try:
            filings = await conn.fetch("SELECT id, idempotency_key FROM filings")
            delivered = await conn.fetchval(
                "SELECT COUNT(*) FROM deliveries WHERE state = 'delivered'"
            )
        finally:
            await conn.close()
    assert len(filings) == len({r["idempotency_key"] for r in filings}) == BEFORE + DURING
    assert {r["id"] for r in filings} == ids
    assert delivered == BEFORE + DURING
    files = list((tmp_path / "outbox").iterdir())
    assert len(files) == BEFORE + DURING  # one file per filing: none lost, none sent twice
