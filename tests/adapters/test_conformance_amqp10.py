"""The conformance kit against the ``amqp10`` adapter and a real RabbitMQ queue (AMQP 1.0).

RabbitMQ's ``rabbitmq_amqp1_0`` plugin speaks AMQP 1.0 on port 5672 (``.ci/run`` enables
it). The receiver reads the queue back over AMQP 1.0 too: a 0-9-1 consumer would see the
1.0 sections as its body.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from adapters import testing
from tests.adapters.conftest import free_port, unique

pytestmark = pytest.mark.services
amqp10 = pytest.importorskip("adapters.amqp10")
proton_utils = pytest.importorskip("proton.utils")


def read_queue(url: str, queue: str, count: int) -> list[testing.Received]:
    """Take exactly ``count`` messages off ``queue`` over AMQP 1.0, accepting each."""
    connection = proton_utils.BlockingConnection(url, timeout=10)
    try:
        receiver = connection.create_receiver(f"/amq/queue/{queue}", credit=count)
        out = []
        for _ in range(count):
            message = receiver.receive(timeout=10)
            receiver.accept()
            out.append(testing.Received(id=str(message.id), body=bytes(message.body)))
        return out
    finally:
        connection.close()


class QueueReceiver(testing.Receiver):
    """Reads a real queue: its depth from the broker, then that many messages over AMQP 1.0."""

    def __init__(self, channel: Any, url: str, queue: str) -> None:
        self.channel = channel
        self.url = url
        self.queue = queue
        self.taken: list[testing.Received] = []

    async def received(self) -> list[testing.Received]:
        declared = await self.channel.declare_queue(self.queue, passive=True)
        count = declared.declaration_result.message_count
        if count:
            self.taken += await anyio.to_thread.run_sync(read_queue, self.url, self.queue, count)
        return list(self.taken)


def amqp10_url(rabbitmq_url: str) -> str:
    return rabbitmq_url.rstrip("/")


class TestAmqp10Conformance(testing.AdapterConformance):
    bad_options = [
        ({"url": "http://127.0.0.1:5672", "address": "q"}, "url"),
        ({"url": "amqp://127.0.0.1"}, "address"),
        ({"url": "amqp://127.0.0.1", "address": ""}, "address"),
        ({"url": "amqp://127.0.0.1", "address": "q", "timeout": "soon"}, "timeout"),
    ]

    @pytest.fixture
    async def receiver(self, rabbit: Any, rabbitmq_url: str) -> QueueReceiver:
        name = unique("conformance10")
        await rabbit.declare_queue(name, durable=False, auto_delete=False)
        rabbit.made.append(("queue", name))
        return QueueReceiver(rabbit, amqp10_url(rabbitmq_url), name)

    @pytest.fixture
    def adapter(self, rabbitmq_url: str, receiver: QueueReceiver) -> Any:
        options = amqp10.Amqp10Options(
            url=amqp10_url(rabbitmq_url), address=f"/amq/queue/{receiver.queue}", timeout="5s"
        )
        return amqp10.Amqp10Adapter(name="amqp10", options=options)

    @pytest.fixture
    def unreachable_adapter(self) -> Any:
        url = f"amqp://guest:guest@127.0.0.1:{free_port()}"
        options = amqp10.Amqp10Options(url=url, address="nowhere", timeout="2s")
        return amqp10.Amqp10Adapter(name="amqp10", options=options)
