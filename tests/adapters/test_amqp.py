"""The ``amqp`` adapter against the real RabbitMQ on 127.0.0.1:5672 (no mocks)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from adapters import testing
from gateway import errors
from tests.adapters.conftest import TcpProxy, unique

pytestmark = pytest.mark.services
amqp = pytest.importorskip("adapters.amqp")
aio_pika = pytest.importorskip("aio_pika")


async def declare_queue(rabbit: Any, name: str | None = None) -> Any:
    name = name or unique("q")
    queue = await rabbit.declare_queue(name, durable=False, auto_delete=False)
    rabbit.made.append(("queue", name))
    return queue


def make_adapter(url: str, **options: Any) -> Any:
    options.setdefault("timeout", "5s")
    return amqp.AmqpAdapter(name="amqp", options=amqp.AmqpOptions(url=url, **options))


async def drain(queue: Any) -> list[Any]:
    out = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        out.append(message)
    return out


async def send_like_the_dispatcher(adapter: Any, message: Any, attempts: int = 20) -> Any:
    """Retry TransientError with a short pause, as the dispatcher's retry policy would."""
    for attempt in range(1, attempts + 1):
        try:
            return await adapter.send(message.model_copy(update={"attempt": attempt}))
        except errors.TransientError:
            if attempt == attempts:
                raise
            await anyio.sleep(0.2)
    return None


async def test_confirmed_messages_reach_a_consumer_once_each_with_their_id(
    rabbitmq_url: str, rabbit: Any
) -> None:
    """Each send is broker-confirmed; a consumer gets every message once, id and header set."""
    queue = await declare_queue(rabbit)
    adapter = make_adapter(rabbitmq_url, routing_key=queue.name)
    got: list[Any] = []
    done = anyio.Event()
    messages = [testing.make_message() for _ in range(20)]
    barrier = testing.make_message()  # one queue, one channel: it arrives after any duplicate

    async def on_message(incoming: Any) -> None:
        got.append(incoming)
        await incoming.ack()
        if incoming.message_id == barrier.delivery_id:
            done.set()

    tag = await queue.consume(on_message)
    try:
        for message in messages:
            receipt = await adapter.send(message)
            assert receipt.status == "confirmed"
            assert receipt.transport_id == message.delivery_id
        await adapter.send(barrier)
        with anyio.fail_after(5):
            await done.wait()
    finally:
        await queue.cancel(tag)
        await adapter.close()
    assert got.pop().message_id == barrier.delivery_id
    assert [m.message_id for m in got] == [m.delivery_id for m in messages]
    assert [m.headers["Idempotency-Key"] for m in got] == [m.delivery_id for m in messages]
    assert {m.delivery_mode for m in got} == {aio_pika.DeliveryMode.PERSISTENT}
    assert [m.body for m in got] == [m.body for m in messages]


async def test_named_exchange_routes_by_routing_key(rabbitmq_url: str, rabbit: Any) -> None:
    """With an exchange configured, the message goes there under the routing key."""
    name = unique("x")
    exchange = await rabbit.declare_exchange(name, aio_pika.ExchangeType.DIRECT)
    rabbit.made.append(("exchange", name))
    queue = await declare_queue(rabbit)
    await queue.bind(exchange, routing_key="customs.isf")
    adapter = make_adapter(rabbitmq_url, exchange=name, routing_key="customs.isf")
    try:
        message = testing.make_message()
        await adapter.send(message)
    finally:
        await adapter.close()
    assert [m.message_id for m in await drain(queue)] == [message.delivery_id]


async def test_unroutable_message_fails_instead_of_vanishing(rabbitmq_url: str) -> None:
    """No queue bound for the routing key: mandatory publishing makes it a TransientError."""
    adapter = make_adapter(rabbitmq_url, routing_key=unique("no-such-queue"))
    try:
        with pytest.raises(errors.TransientError, match="unroutable"):
            await adapter.send(testing.make_message())
        assert (await adapter.check()).ok  # the channel survives a return
    finally:
        await adapter.close()


async def test_missing_exchange_is_transient_and_recovers_once_declared(
    rabbitmq_url: str, rabbit: Any
) -> None:
    """A missing exchange names itself in a TransientError; once declared, sends go through."""
    name = unique("late-x")
    adapter = make_adapter(rabbitmq_url, exchange=name, routing_key="k")
    try:
        with pytest.raises(errors.TransientError, match=name):
            await adapter.send(testing.make_message())
        exchange = await rabbit.declare_exchange(name, aio_pika.ExchangeType.DIRECT)
        rabbit.made.append(("exchange", name))
        queue = await declare_queue(rabbit)
        await queue.bind(exchange, routing_key="k")
        message = testing.make_message()
        await adapter.send(message)
    finally:
        await adapter.close()
    assert [m.message_id for m in await drain(queue)] == [message.delivery_id]


async def test_refused_login_is_transient_and_hides_the_password(rabbitmq_url: str) -> None:
    """Wrong credentials: a TransientError that says so, without the password in it."""
    url = rabbitmq_url.replace("guest:guest", "guest:not-the-password")
    adapter = make_adapter(url, routing_key="q")
    try:
        with pytest.raises(errors.TransientError) as info:
            await adapter.send(testing.make_message())
    finally:
        await adapter.close()
    assert "not-the-password" not in str(info.value)
    assert "127.0.0.1" in str(info.value)


async def test_password_comes_from_the_environment(
    rabbitmq_url: str, rabbit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """password_env fills in the password, so the config file holds no secret."""
    monkeypatch.setenv("EDIGW_TEST_AMQP_PASSWORD", "guest")
    queue = await declare_queue(rabbit)
    url = rabbitmq_url.replace("guest:guest@", "guest@")
    adapter = make_adapter(url, routing_key=queue.name, password_env="EDIGW_TEST_AMQP_PASSWORD")
    try:
        message = testing.make_message()
        await adapter.send(message)
    finally:
        await adapter.close()
    assert [m.message_id for m in await drain(queue)] == [message.delivery_id]


async def test_dropped_connection_recovers_and_loses_nothing(
    rabbitmq_url: str, rabbit: Any, tcp_proxy_factory: list[TcpProxy]
) -> None:
    """The broker link is cut twice under 4 concurrent senders; it recovers, all arrive."""
    proxy = await TcpProxy("127.0.0.1", int(rabbitmq_url.rsplit(":", 1)[1].strip("/"))).start()
    tcp_proxy_factory.append(proxy)
    queue = await declare_queue(rabbit)
    url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
    adapter = make_adapter(url, routing_key=queue.name, reconnect_interval="100ms", timeout="3s")
    messages = [testing.make_message(body=b"x" * 20_000 + bytes([i])) for i in range(40)]
    todo = list(messages)
    receipts = []

    async def sender() -> None:
        while todo:
            receipts.append(await send_like_the_dispatcher(adapter, todo.pop()))
            await anyio.sleep(0.005)

    async def cutter() -> None:
        for _ in range(2):
            await anyio.sleep(0.1)
            proxy.cut()

    try:
        await adapter.open()
        async with anyio.create_task_group() as tg:
            tg.start_soon(cutter)
            for _ in range(4):
                tg.start_soon(sender)
        assert proxy.cuts == 2
        assert (await adapter.check()).ok
    finally:
        await adapter.close()
    assert len(receipts) == 40
    assert {r.status for r in receipts} == {"confirmed"}
    got = await drain(queue)
    assert {m.message_id for m in got} == {m.delivery_id for m in messages}
    bodies = {m.message_id: m.body for m in got}  # a resent copy has the same id and body
    assert all(bodies[m.delivery_id] == m.body for m in messages)


async def test_receive_yields_replies_and_settles_them(rabbitmq_url: str, rabbit: Any) -> None:
    """receive() yields reply messages with headers; True acks, False rejects, close keeps."""
    replies = await declare_queue(rabbit)
    adapter = make_adapter(rabbitmq_url, routing_key="unused", reply_queue=replies.name)
    for i in range(3):
        await rabbit.default_exchange.publish(
            aio_pika.Message(
                f"ack {i}".encode(),
                message_id=f"reply-{i}",
                content_type="application/edi-x12",
                headers={"X-Ref": f"r{i}"},
            ),
            routing_key=replies.name,
        )
    try:
        documents = adapter.receive()
        with anyio.fail_after(5):
            first = await documents.__anext__()
            second = await documents.asend(True)  # first: stored → acked
            third = await documents.asend(False)  # second: unreadable → rejected
        assert (first.name, first.body, first.headers) == ("reply-0", b"ack 0", {"X-Ref": "r0"})
        assert first.content_type == "application/edi-x12"
        assert (second.name, third.name) == ("reply-1", "reply-2")
        await documents.aclose()  # third got no verdict: it must stay on the queue
    finally:
        await adapter.close()
    left: list[Any] = []
    with anyio.fail_after(5):  # the broker requeues the unsettled one as the channel closes
        while not left:
            left = await drain(replies)
            await anyio.sleep(0.02)  # a poll interval
    assert [m.message_id for m in left] == ["reply-2"]


async def test_check_says_reconnecting_at_once_while_the_link_is_down(
    rabbitmq_url: str, rabbit: Any, tcp_proxy_factory: list[TcpProxy]
) -> None:
    """While the broker is unreachable after a drop, check() answers not-ok without waiting."""
    proxy = await TcpProxy("127.0.0.1", int(rabbitmq_url.rsplit(":", 1)[1].strip("/"))).start()
    tcp_proxy_factory.append(proxy)
    queue = await declare_queue(rabbit)
    url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
    adapter = make_adapter(url, routing_key=queue.name, reconnect_interval="100ms", timeout="10s")
    try:
        await adapter.open()
        assert (await adapter.check()).ok
        proxy.target = ("127.0.0.1", 1)  # the broker "goes away": reconnects are refused
        proxy.cut()
        await anyio.sleep(0.1)
        with anyio.fail_after(1):
            health = await adapter.check()
        assert not health.ok
        assert "reconnecting" in health.detail
        proxy.target = ("127.0.0.1", int(rabbitmq_url.rsplit(":", 1)[1].strip("/")))
        message = testing.make_message()
        await adapter.send(message)  # waits for the robust connection, then goes through
    finally:
        await adapter.close()
    assert [m.message_id for m in await drain(queue)] == [message.delivery_id]
