"""Fixtures for the inbound tests: a declarative TMS source, the acme normalizer package
registered as an entry point, RabbitMQ queues, and a real ``serve`` subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import service_missing

ROOT = Path(__file__).resolve().parents[2]
AMQP_URL = os.environ.get("EDIGW_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

#: how the TMS's ``shipment.booked`` becomes a filing, declaratively
TMS_SOURCE: dict[str, Any] = {
    "types": ["com.acme.tms.shipment.booked"],
    "map": {
        "filing_type": "booking.mode",
        "reference": "booking.bill_of_lading",
        "filer_code": "booking.filer",
        "payload": "booking",
        "metadata.booking_id": "booking.id",
    },
    "constants": {"environment": "cert"},
    "filing_types": {"ocean": "isf", "air": "manifest.air"},
}


def booking(n: int | str = 1, *, mode: str = "ocean", **changes: Any) -> dict[str, Any]:
    """A TMS ``shipment.booked`` internal event."""
    event = {
        "id": f"BK-{n}",
        "mode": mode,
        "bill_of_lading": f"MAEU{n}",
        "filer": "XYZ",
        "shipper": "Shenzhen Widgets Co",
    }
    event.update(changes)
    return {"booking": event}


def cloudevent(data: Any, *, id: str = "evt-1", type: str = "com.acme.tms.shipment.booked",
               source: str = "/tms/eu", **attrs: Any) -> dict[str, Any]:  # fmt: skip
    """A structured-mode CloudEvent 1.0 as a dict."""
    return {"specversion": "1.0", "id": id, "source": source, "type": type, "data": data, **attrs}


@pytest.fixture
def acme_entry_point(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> Path:
    """Install the acme normalizer as entry point ``acme-billing`` (a .dist-info on sys.path)."""
    site = tmp_path_factory.mktemp("site")
    dist = site / "acme_normalizers-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-normalizers\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[edi_gateway.normalizers]\nacme-billing = tests.inbound.acme_normalizers:billing_event\n"
    )
    monkeypatch.syspath_prepend(str(site))
    return site


def filings(db: Path) -> list[dict[str, Any]]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute("SELECT * FROM filings ORDER BY seq")]
        except sqlite3.OperationalError:
            return []


def rejected(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM rejected_events ORDER BY seq")]


# --- RabbitMQ ---------------------------------------------------------------------------


class Rabbit:
    """A connection for the test side: publish, count, and clean up unique queues."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.queues: list[str] = []

    def new_queue(self) -> str:
        name = f"edigw-test-{uuid.uuid4().hex[:12]}"
        self.queues.append(name)
        return name

    async def publish(self, queue: str, bodies: list[tuple[bytes, dict[str, Any]]]) -> None:
        import aio_pika

        channel = await self.connection.channel()
        try:
            await channel.declare_queue(queue, durable=True)
            for body, props in bodies:
                await channel.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **props),
                    routing_key=queue,
                )
        finally:
            await channel.close()

    async def depth(self, queue: str) -> tuple[int, int]:
        """(ready messages, consumers) of a queue."""
        channel = await self.connection.channel()
        try:
            q = await channel.declare_queue(queue, durable=True)
            return q.declaration_result.message_count, q.declaration_result.consumer_count
        finally:
            await channel.close()


@pytest.fixture
async def rabbit() -> AsyncIterator[Rabbit]:
    """A live RabbitMQ (skip if absent; fail with EDIGW_REQUIRE_SERVICES=1)."""
    try:
        import aio_pika
    except ImportError:
        service_missing("aio-pika is not installed (pip install 'edi-gateway[amqp]')")
    try:
        connection = await aio_pika.connect(AMQP_URL, timeout=5)
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        service_missing(f"RabbitMQ at {AMQP_URL} is not reachable: {exc!r}")
    r = Rabbit(connection)
    try:
        yield r
    finally:
        channel = await connection.channel()
        for q in r.queues:
            await channel.queue_delete(q)
        await connection.close()


# --- a real `edi-gateway serve` ---------------------------------------------------------


async def start_serve(
    config_path: Path, port: int, *, log: Path, pythonpath: list[str] | None = None
) -> asyncio.subprocess.Process:
    """Start ``python -m gateway.cli.main serve``; wait for /readyz (logs appended to ``log``)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *(pythonpath or [])])}
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli.main", "serve", "--config", str(config_path),
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    async with aiohttp.ClientSession() as s:
        for _ in range(300):
            try:
                async with s.get(f"http://127.0.0.1:{port}/readyz") as r:
                    if r.status == 200:
                        return proc
            except aiohttp.ClientError:
                pass
            if proc.returncode is not None:
                raise AssertionError(
                    f"serve exited with {proc.returncode}: {log.read_text()[-2000:]}"
                )
            await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError("serve did not become ready")


def log_events(log: Path, event: str) -> int:
    n = 0
    for line in log.read_text(errors="replace").splitlines():
        try:
            if json.loads(line).get("event") == event:
                n += 1
        except json.JSONDecodeError:
            continue
    return n
