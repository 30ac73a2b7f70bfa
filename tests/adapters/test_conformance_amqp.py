"""The conformance kit against the ``amqp`` adapter and a real RabbitMQ queue."""

from __future__ import annotations

from typing import Any

import pytest

from adapters import testing
from tests.adapters.conftest import free_port, unique

pytestmark = pytest.mark.services
amqp = pytest.importorskip("adapters.amqp")


class QueueReceiver(testing.Receiver):
    """Reads a real queue with basic.get; remembers everything it took."""

    def __init__(self, channel: Any, queue: str) -> None:
        self.channel = channel
        self.queue = queue
        self.taken: list[testing.Received] = []

    async def received(self) -> list[testing.Received]:
        queue = await self.channel.get_queue(self.queue)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            self.taken.append(testing.Received(id=message.message_id or "", body=message.body))
        return list(self.taken)


class TestAmqpConformance(testing.AdapterConformance):
    bad_options = [
        ({"url": "http://127.0.0.1:5672/", "routing_key": "q"}, "url"),
        ({"url": "amqp://127.0.0.1/"}, "routing_key"),
        ({"url": "amqp://127.0.0.1/", "routing_key": "q", "timeout": "soon"}, "timeout"),
    ]

    @pytest.fixture
    async def receiver(self, rabbit: Any) -> QueueReceiver:
        name = unique("conformance")
        await rabbit.declare_queue(name, durable=False, auto_delete=False)
        rabbit.made.append(("queue", name))
        return QueueReceiver(rabbit, name)

    @pytest.fixture
    def adapter(self, rabbitmq_url: str, receiver: QueueReceiver) -> Any:
        options = amqp.AmqpOptions(url=rabbitmq_url, routing_key=receiver.queue, timeout="5s")
        return amqp.AmqpAdapter(name="amqp", options=options)

    @pytest.fixture
    def unreachable_adapter(self) -> Any:
        url = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
        options = amqp.AmqpOptions(url=url, routing_key="nowhere", timeout="2s")
        return amqp.AmqpAdapter(name="amqp", options=options)
