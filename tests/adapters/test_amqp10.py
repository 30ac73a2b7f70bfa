"""The ``amqp10`` adapter against real AMQP 1.0 peers: RabbitMQ's plugin and Proton's listener.

The outcomes RabbitMQ 3.10 never gives (rejected, released, modified, a forced close, no
answer) come from ``Amqp10Peer``, a real AMQP 1.0 listener on loopback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from adapters import testing
from gateway import config, errors, registry
from tests.adapters.conftest import TcpProxy, unique

pytestmark = pytest.mark.services
amqp10 = pytest.importorskip("adapters.amqp10")
proton = pytest.importorskip("proton")
proton_utils = pytest.importorskip("proton.utils")
from tests.adapters.amqp10_peer import Amqp10Peer  # noqa: E402 - needs proton, skipped above


def make_adapter(url: str, address: str = "filings", **options: Any) -> Any:
    options.setdefault("timeout", "5s")
    return amqp10.Amqp10Adapter(
        name="mq10", options=amqp10.Amqp10Options(url=url, address=address, **options)
    )


@pytest.fixture
def peer() -> Iterator[Amqp10Peer]:
    started = Amqp10Peer().start()
    try:
        yield started
    finally:
        started.stop()


def broker_url(rabbitmq_url: str) -> str:
    return rabbitmq_url.rstrip("/")


async def declare_queue(rabbit: Any, **arguments: Any) -> str:
    name = unique("q10")
    await rabbit.declare_queue(name, durable=False, auto_delete=False, arguments=arguments or None)
    rabbit.made.append(("queue", name))
    return name


async def depth(rabbit: Any, queue: str) -> int:
    declared = await rabbit.declare_queue(queue, passive=True)
    return int(declared.declaration_result.message_count)


# --- outcomes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "error", "text"),
    [
        ("reject:amqp:invalid-field", errors.PermanentError, "rejected"),
        ("reject:amqp:link:message-size-exceeded", errors.MessageError, "size-exceeded"),
        ("reject:amqp:resource-limit-exceeded", errors.TransientError, "resource-limit"),
        ("release", errors.TransientError, "released"),
        ("modified:failed", errors.TransientError, "delivery failed"),
        ("modified:undeliverable", errors.PermanentError, "undeliverable"),
        ("close:amqp:connection:forced", errors.OutageError, "connection:forced"),
    ],
)
async def test_each_outcome_other_than_accepted_maps_to_its_gateway_error(
    peer: Amqp10Peer, outcome: str, error: type[Exception], text: str
) -> None:
    """The receiver's disposition decides: only accepted is a Receipt; the next send recovers."""
    peer.outcomes.extend([outcome, "accept"])
    adapter = make_adapter(peer.url)
    refused, taken = testing.make_message(), testing.make_message()
    try:
        with pytest.raises(errors.DeliveryError) as info:
            await adapter.send(refused)
        receipt = await adapter.send(taken)
    finally:
        await adapter.close()
    assert type(info.value) is error, repr(info.value)
    assert text in str(info.value)
    assert receipt.status == "accepted"
    assert [(m.id, m.outcome) for m in peer.received] == [
        (refused.delivery_id, outcome),
        (taken.delivery_id, "accept"),
    ]


async def test_no_outcome_in_time_is_transient_and_a_fresh_link_is_used_next(
    peer: Amqp10Peer,
) -> None:
    """A receiver that never settles: TransientError after timeout; the next send reconnects."""
    peer.outcomes.extend(["silent", "accept"])
    adapter = make_adapter(peer.url, timeout="300ms")
    try:
        with pytest.raises(errors.TransientError, match="timed out"):
            await adapter.send(testing.make_message())
        await adapter.send(testing.make_message())
    finally:
        await adapter.close()
    assert [m.outcome for m in peer.received] == ["silent", "accept"]
    assert peer.connections == 2


async def test_a_send_waiting_on_a_silent_receiver_is_cancelled_at_once(
    peer: Amqp10Peer,
) -> None:
    """Cancelling a send that waits for an outcome returns at once, not after `timeout`."""
    peer.outcomes.append("silent")
    adapter = make_adapter(peer.url, timeout="4s")
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(adapter.send, testing.make_message())
            while not peer.received:  # the message is out; its outcome never comes
                await anyio.sleep(0.01)
            cancelled_at = anyio.current_time()
            tg.cancel_scope.cancel()
        took_s = anyio.current_time() - cancelled_at
    finally:
        await adapter.close()  # waits for the abandoned worker thread: up to `timeout`
    assert took_s < 2.0, f"the cancelled send held on for {took_s:.1f} s (timeout is 4 s)"
    assert [m.outcome for m in peer.received] == ["silent"]


async def test_a_broker_that_freezes_costs_a_bounded_wait_not_a_hung_adapter(
    peer: Amqp10Peer,
) -> None:
    """The receiver hangs mid-send, sockets open: TransientError, a check, close: all bounded."""
    peer.outcomes.append("freeze")
    adapter = make_adapter(peer.url, timeout="1s")
    try:
        with anyio.fail_after(15):  # 1 s timeouts plus 2 x 2 s close bounds, with room
            with pytest.raises(errors.TransientError, match="timed out"):
                await adapter.send(testing.make_message())
            health = await adapter.check()  # connects to the hung listener: no answer
    finally:
        with anyio.move_on_after(15):
            await adapter.close()
    assert not health.ok, health.detail
    assert [m.outcome for m in peer.received] == ["freeze"]


async def test_message_carries_its_id_body_and_filing_properties(peer: Amqp10Peer) -> None:
    """Message id and Idempotency-Key are the delivery id; the body arrives byte for byte."""
    adapter = make_adapter(peer.url)
    message = testing.make_message(body=b"ISA*00*\x00binary\xff")
    try:
        await adapter.send(message)
    finally:
        await adapter.close()
    [got] = peer.received
    assert (got.id, got.body) == (message.delivery_id, message.body)
    assert got.properties["Idempotency-Key"] == message.delivery_id
    assert got.properties["X-EDI-Filing-Id"] == message.filing_id
    assert got.properties["X-EDI-Reference"] == message.reference
    assert got.properties["X-EDI-Attempt"] == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [("reference", "ISF-1\r\nX-Injected: yes"), ("filer_code", "XYZ\x00"), ("reference", "A\x85")],
)
async def test_filing_field_with_a_control_character_is_refused_as_the_message_fault(
    peer: Amqp10Peer, field: str, value: str
) -> None:
    """A property value with a control character is never sent; the next message still is."""
    adapter = make_adapter(peer.url)
    bad = testing.make_message().model_copy(update={field: value})
    good = testing.make_message()
    try:
        with pytest.raises(errors.MessageError, match="control character"):
            await adapter.send(bad)
        await adapter.send(good)
    finally:
        await adapter.close()
    assert [m.id for m in peer.received] == [good.delivery_id]


# --- RabbitMQ ----------------------------------------------------------------------------


async def test_rabbitmq_full_queue_is_transient_not_a_receipt(
    rabbitmq_url: str, rabbit: Any
) -> None:
    """RabbitMQ 3.10 aborts the link on a reject-publish queue: TransientError, never accepted."""
    full = await declare_queue(rabbit, **{"x-max-length": 0, "x-overflow": "reject-publish"})
    roomy = await declare_queue(rabbit)
    adapter = make_adapter(broker_url(rabbitmq_url), f"/amq/queue/{full}")
    other = make_adapter(broker_url(rabbitmq_url), f"/amq/queue/{roomy}")
    try:
        with pytest.raises(errors.TransientError):
            await adapter.send(testing.make_message())
        await other.send(testing.make_message())
    finally:
        await adapter.close()
        await other.close()
    assert (await depth(rabbit, full), await depth(rabbit, roomy)) == (0, 1)


async def test_missing_exchange_is_transient_and_recovers_once_declared(
    rabbitmq_url: str, rabbit: Any
) -> None:
    """A target that does not exist yet (RabbitMQ never answers the attach) is transient."""
    aio_pika = pytest.importorskip("aio_pika")
    name = unique("late-x10")
    adapter = make_adapter(broker_url(rabbitmq_url), f"/exchange/{name}/k", timeout="1s")
    try:
        with pytest.raises(errors.TransientError, match=name):
            await adapter.send(testing.make_message())
        exchange = await rabbit.declare_exchange(name, aio_pika.ExchangeType.DIRECT)
        rabbit.made.append(("exchange", name))
        queue = await declare_queue(rabbit)
        await (await rabbit.get_queue(queue)).bind(exchange, routing_key="k")
        await adapter.send(testing.make_message())
    finally:
        await adapter.close()
    assert await depth(rabbit, queue) == 1


async def test_refused_login_is_transient_and_hides_the_password(rabbitmq_url: str) -> None:
    """Wrong credentials: a TransientError naming the broker, without the password."""
    url = broker_url(rabbitmq_url).replace("guest:guest", "guest:not-the-password")
    adapter = make_adapter(url, "/amq/queue/x")
    try:
        with pytest.raises(errors.TransientError) as info:
            await adapter.send(testing.make_message())
        health = await adapter.check()
    finally:
        await adapter.close()
    assert "not-the-password" not in str(info.value)
    assert "127.0.0.1" in str(info.value)
    assert not health.ok


async def test_password_comes_from_the_environment(
    rabbitmq_url: str, rabbit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """password_env fills in the password, so the config file holds no secret."""
    monkeypatch.setenv("EDIGW_TEST_AMQP10_PASSWORD", "guest")
    queue = await declare_queue(rabbit)
    url = broker_url(rabbitmq_url).replace("guest:guest@", "guest@")
    adapter = make_adapter(url, f"/amq/queue/{queue}", password_env="EDIGW_TEST_AMQP10_PASSWORD")
    try:
        await adapter.send(testing.make_message())
    finally:
        await adapter.close()
    assert await depth(rabbit, queue) == 1


async def test_percent_encoded_user_and_password_in_the_url_are_decoded(
    rabbitmq_url: str, rabbit: Any
) -> None:
    """A URL's user and password are percent-decoded before login (%65 is e: guest)."""
    queue = await declare_queue(rabbit)
    url = broker_url(rabbitmq_url).replace("guest:guest@", "gu%65st:gu%65st@")
    adapter = make_adapter(url, f"/amq/queue/{queue}")
    try:
        await adapter.send(testing.make_message())
    finally:
        await adapter.close()
    assert await depth(rabbit, queue) == 1


async def test_dropped_connection_is_transient_then_the_next_send_reconnects(
    rabbitmq_url: str, rabbit: Any, tcp_proxy_factory: list[TcpProxy]
) -> None:
    """The broker link is cut: that send (or the next) fails transient, then sends go through."""
    port = int(broker_url(rabbitmq_url).rsplit(":", 1)[1])
    proxy = await TcpProxy("127.0.0.1", port).start()
    tcp_proxy_factory.append(proxy)
    queue = await declare_queue(rabbit)
    adapter = make_adapter(f"amqp://guest:guest@127.0.0.1:{proxy.port}", f"/amq/queue/{queue}")
    try:
        await adapter.send(testing.make_message())
        proxy.cut()
        with pytest.raises(errors.TransientError):
            await adapter.send(testing.make_message())
        await adapter.send(testing.make_message())
    finally:
        await adapter.close()
    assert await depth(rabbit, queue) == 2


async def test_check_notices_a_cut_link_and_reconnects_on_the_next_call(
    rabbitmq_url: str, rabbit: Any, tcp_proxy_factory: list[TcpProxy]
) -> None:
    """check() on an idle connection that was cut says not ok; the next check reconnects."""
    port = int(broker_url(rabbitmq_url).rsplit(":", 1)[1])
    proxy = await TcpProxy("127.0.0.1", port).start()
    tcp_proxy_factory.append(proxy)
    queue = await declare_queue(rabbit)
    adapter = make_adapter(f"amqp://guest:guest@127.0.0.1:{proxy.port}", f"/amq/queue/{queue}")
    try:
        assert (await adapter.check()).ok
        proxy.cut()
        with anyio.fail_after(5):
            while (health := await adapter.check()).ok:
                pass  # the RST may take a moment to reach the socket
        after = await adapter.check()
    finally:
        await adapter.close()
    assert "127.0.0.1" in health.detail
    assert after.ok, after.detail


def publish_replies(url: str, queue: str, count: int) -> None:
    """A partner answering over AMQP 1.0: ``count`` replies with an id and a property."""
    connection = proton_utils.BlockingConnection(url, timeout=10)
    try:
        sender = connection.create_sender(f"/amq/queue/{queue}")
        for i in range(count):
            sender.send(
                proton.Message(
                    id=f"reply-{i}",
                    body=f"ack {i}".encode(),
                    content_type="application/edi-x12",
                    properties={"X-Ref": f"r{i}"},
                )
            )
    finally:
        connection.close()


async def test_receive_yields_replies_accepts_rejects_and_keeps_the_unsettled(
    rabbitmq_url: str, rabbit: Any
) -> None:
    """receive(): True accepts, False rejects (dead-lettered), no verdict leaves it queued."""
    dead = await declare_queue(rabbit)
    replies = await declare_queue(
        rabbit, **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}
    )
    url = broker_url(rabbitmq_url)
    await anyio.to_thread.run_sync(publish_replies, url, replies, 3)
    adapter = make_adapter(url, "/amq/queue/unused", reply_address=f"/amq/queue/{replies}")
    documents = adapter.receive()
    try:
        with anyio.fail_after(10):
            first = await documents.__anext__()
            second = await documents.asend(True)  # first: stored → accepted
            third = await documents.asend(False)  # second: unreadable → rejected
        await documents.aclose()  # third got no verdict: it must go back to the queue
    finally:
        await adapter.close()
    assert (first.name, first.body, first.headers) == ("reply-0", b"ack 0", {"X-Ref": "r0"})
    assert first.content_type == "application/edi-x12"
    assert (second.name, third.name) == ("reply-1", "reply-2")
    with anyio.fail_after(10):
        while (await depth(rabbit, replies), await depth(rabbit, dead)) != (1, 1):
            await anyio.sleep(0.05)
    assert await anyio.to_thread.run_sync(_take_one, url, replies) == ["reply-2"]
    assert await anyio.to_thread.run_sync(_take_one, url, dead) == ["reply-1"]


def _take_one(url: str, queue: str) -> list[str]:
    connection = proton_utils.BlockingConnection(url, timeout=10)
    try:
        receiver = connection.create_receiver(f"/amq/queue/{queue}", credit=1)
        message = receiver.receive(timeout=10)
        receiver.accept()
        return [str(message.id)]
    finally:
        connection.close()


# --- optional extra ----------------------------------------------------------------------


def test_missing_proton_is_a_config_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without python-qpid-proton, `type = "amqp10"` fails at start-up naming the extra."""
    monkeypatch.setitem(sys.modules, "proton", None)  # import proton → ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "adapters.amqp10")
    section = config.AdapterConfig.model_validate(
        {"type": "amqp10", "url": "amqp://mq.example", "address": "filings"}
    )
    with pytest.raises(errors.ConfigError, match=r"pip install 'edi-gateway\[amqp10\]'") as info:
        registry.build("mq10", section)
    assert info.value.key == "adapters.mq10.type"
