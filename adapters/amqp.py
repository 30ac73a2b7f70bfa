"""``amqp``: publish each delivery to a RabbitMQ (AMQP 0-9-1) exchange, broker-confirmed.

Every message is persistent, published with ``mandatory`` on a channel in publisher-confirm
mode, so a delivery is ``delivered`` only when the broker has taken responsibility for it:

* the broker confirms (``basic.ack``)           → ``Receipt(status="confirmed")``;
* the broker nacks, or cannot route the message
  (no queue bound: ``basic.return`` — never a silent drop),
  or is unreachable / refuses the connection      → ``TransientError``;
* a confirm that does not come within ``timeout`` → ``TransientError``.

The message id and the ``Idempotency-Key`` header are the delivery id, so a consumer can
drop the duplicate that a lost confirm makes us send again. The connection is
``connect_robust``: after a drop it reconnects in the background, and a send waits for it
(up to ``timeout``) instead of failing at once.

With ``reply_queue`` set, ``receive()`` yields the messages of that queue as
``adapters.inbound.InboundDocument`` (see there for the verdict protocol).

aio-pika's exceptions never leave this module: ``_translated`` maps them with a table,
``from exc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, Iterator
from typing import Annotated, Any

import aio_pika
import aio_pika.abc
import anyio
from aio_pika import exceptions as amqp_errors
from pydantic import AnyUrl, Field, UrlConstraints

from adapters import base, inbound
from adapters.base import Duration
from gateway import errors, models

AmqpUrl = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["amqp", "amqps"], host_required=True)]

#: library exception → (our error, what it means); the first match wins, so order matters
_ERROR_TABLE: tuple[tuple[type[BaseException], type[errors.DeliveryError], str], ...] = (
    (amqp_errors.PublishError, errors.TransientError, "unroutable (returned by the broker)"),
    (amqp_errors.DeliveryError, errors.TransientError, "refused by the broker (nack)"),
    (amqp_errors.ProbableAuthenticationError, errors.TransientError, "login refused"),
    (amqp_errors.AuthenticationError, errors.TransientError, "login refused"),
    (amqp_errors.ChannelNotFoundEntity, errors.TransientError, "not found on the broker"),
    (amqp_errors.ChannelClosed, errors.TransientError, "channel closed by the broker"),
    (amqp_errors.ChannelInvalidStateError, errors.TransientError, "channel not usable"),
    (amqp_errors.AMQPConnectionError, errors.TransientError, "connection lost"),
    (amqp_errors.AMQPError, errors.TransientError, "AMQP error"),
    # aio-pika raises RuntimeError for "connection not opened / closed" while reconnecting
    (RuntimeError, errors.TransientError, "connection not usable (reconnecting?)"),
    (ConnectionError, errors.TransientError, "broker unreachable"),
    (OSError, errors.TransientError, "broker unreachable"),
    (TimeoutError, errors.TransientError, "no answer from the broker in time"),
)
_LIBRARY_ERRORS = tuple(exc_type for exc_type, _, _ in _ERROR_TABLE)


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    """Re-raise aio-pika/aiormq/socket errors as our taxonomy, ``from exc``."""
    try:
        yield
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise  # a real cancellation of this task: let it through
        # a future inside the library was cancelled (its connection died), not this task
        raise errors.TransientError(f"{what}: connection lost") from exc
    except _LIBRARY_ERRORS as exc:
        for exc_type, error_type, meaning in _ERROR_TABLE:
            if isinstance(exc, exc_type):
                detail = str(exc) or type(exc).__name__
                raise error_type(f"{what}: {meaning}: {detail}") from exc
        raise  # pragma: no cover - the table covers _LIBRARY_ERRORS


class AmqpOptions(base.AdapterOptions):
    url: AmqpUrl = Field(description="broker URL, e.g. amqp://user@mq.example:5672/vhost")
    exchange: str = Field(default="", description="exchange name; empty = the default exchange")
    routing_key: str = Field(
        min_length=1, description="routing key (the queue name with the default exchange)"
    )
    password_env: str | None = Field(
        default=None, description="env var holding the password (instead of one in the URL)"
    )
    timeout: Duration = Field(default=30.0, gt=0, description="connect / confirm timeout")
    reconnect_interval: Duration = Field(
        default=2.0, gt=0, description="pause between reconnect attempts after a drop"
    )
    reply_queue: str | None = Field(
        default=None, min_length=1, description="queue receive() reads acks from, if any"
    )
    prefetch: int = Field(default=10, ge=1, le=10_000, description="unacked replies in flight")


class AmqpAdapter(base.BaseAdapter):
    """Publishes each delivery, persistent and confirmed, to ``exchange`` / ``routing_key``."""

    Options = AmqpOptions

    def __init__(self, *, name: str, options: AmqpOptions) -> None:
        super().__init__(name=name, options=options)
        self.options: AmqpOptions = options
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractRobustChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._lock = anyio.Lock()

    @property
    def where(self) -> str:
        """The broker and target, without credentials, for messages."""
        o = self.options
        target = f"exchange {o.exchange!r}" if o.exchange else "the default exchange"
        return f"{o.url.host}:{o.url.port or 5672} {target} key {o.routing_key!r}"

    def _url(self) -> str:
        url = self.options.url
        env = self.options.password_env
        if env is None:
            return str(url)
        password = os.environ.get(env)
        if not password:
            raise errors.PermanentError(f"env var {env} (AMQP password) is not set")
        return str(
            AnyUrl.build(
                scheme=url.scheme,
                username=url.username,
                password=password,
                host=url.host or "",
                port=url.port,
                path=(url.path or "/").lstrip("/") or None,
                query=url.query,
            )
        )

    async def open(self) -> None:
        await self._ready()

    async def _ready(self) -> aio_pika.abc.AbstractExchange:
        """The exchange on a live channel, connecting (once, under a lock) if needed.

        After a drop, the robust connection reconnects and restores the channel in the
        background (also after the broker closed the channel, e.g. a 404): wait for that,
        up to ``timeout``, rather than failing at once.
        """
        async with self._lock:
            if self._connection is None:
                with (
                    _translated(f"connecting to {self.where}"),
                    anyio.fail_after(self.options.timeout),
                ):
                    self._connection = await aio_pika.connect_robust(
                        self._url(),
                        timeout=self.options.timeout,
                        reconnect_interval=self.options.reconnect_interval,
                        client_properties={"connection_name": f"edi-gateway {self.name}"},
                    )
            with (
                _translated(f"waiting for the channel to {self.where}"),
                anyio.fail_after(self.options.timeout),
            ):
                if self._channel is None:
                    self._channel = await self._connection.channel(
                        publisher_confirms=True, on_return_raises=True
                    )
                await self._channel.ready()
            if self._exchange is None:
                with _translated(f"finding {self.where}"), anyio.fail_after(self.options.timeout):
                    if self.options.exchange:
                        self._exchange = await self._channel.get_exchange(
                            self.options.exchange, ensure=True
                        )
                    else:
                        self._exchange = self._channel.default_exchange
            return self._exchange

    def _message(self, message: models.OutboundMessage) -> aio_pika.Message:
        base.carriable({"content_type": message.content_type, "reference": message.reference})
        return aio_pika.Message(
            body=message.body,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.delivery_id,
            correlation_id=message.filing_id,
            type=message.filing_type.value,
            app_id="edi-gateway",
            headers={
                "Idempotency-Key": message.delivery_id,
                "X-EDI-Filing-Id": message.filing_id,
                "X-EDI-Filing-Type": message.filing_type.value,
                "X-EDI-Environment": message.environment.value,
                "X-EDI-Reference": message.reference,
                "X-EDI-Attempt": message.attempt,
                **_trace_headers(message),
            },
        )

    def trace_span(self, message: models.OutboundMessage) -> tuple[str, str, dict[str, Any]]:
        """This send's span for the gateway's tracing: a messaging producer span, named and
        attributed after OpenTelemetry's semantic conventions (RabbitMQ)."""
        exchange = self.options.exchange or "amq.default"
        attributes: dict[str, Any] = {
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "send",
            "messaging.operation.name": "publish",
            "messaging.destination.name": exchange,
            "messaging.rabbitmq.destination.routing_key": self.options.routing_key,
            "messaging.message.id": message.delivery_id,
            "messaging.message.conversation_id": message.filing_id,
            "messaging.message.body.size": len(message.body),
        }
        return f"publish {exchange}", "producer", attributes

    async def send(self, message: models.OutboundMessage) -> models.Receipt:
        exchange = await self._ready()
        assert self._channel is not None
        with _translated(f"publishing to {self.where}"), anyio.fail_after(self.options.timeout):
            await exchange.publish(
                self._message(message), routing_key=self.options.routing_key, mandatory=True
            )
        return models.Receipt(
            transport_id=message.delivery_id,
            status="confirmed",
            detail={"exchange": self.options.exchange, "routing_key": self.options.routing_key},
        )

    async def receive(self) -> AsyncGenerator[inbound.InboundDocument, bool | None]:
        """Messages of ``reply_queue``; verdict True/None → ack, False → reject (no requeue)."""
        queue_name = self.options.reply_queue
        if queue_name is None:
            await anyio.sleep_forever()
            return
        await self._ready()
        assert self._connection is not None
        with _translated(f"consuming {queue_name!r}"):
            channel = await self._connection.channel()
        try:
            with _translated(f"consuming {queue_name!r}"):
                await channel.set_qos(prefetch_count=self.options.prefetch)
                queue = await channel.get_queue(queue_name, ensure=True)
                iterator = queue.iterator()
            async with iterator:
                while True:
                    with _translated(f"consuming {queue_name!r}"):
                        incoming = await iterator.__anext__()
                    verdict = yield _document(incoming)
                    with _translated(f"settling a message of {queue_name!r}"):
                        if verdict is False:
                            await incoming.reject(requeue=False)
                        else:
                            await incoming.ack()
        finally:
            with anyio.CancelScope(shield=True):
                with contextlib.suppress(*_LIBRARY_ERRORS):
                    await channel.close()

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        self._channel = self._exchange = None
        if connection is not None:
            with contextlib.suppress(*_LIBRARY_ERRORS):
                await connection.close()

    async def check(self) -> models.Health:
        connection = self._connection
        if connection is not None and not connection.connected.is_set():
            # a health probe must not wait out a reconnect
            return models.Health(ok=False, detail=f"{self.where} reconnecting")
        try:
            await self._ready()
        except errors.DeliveryError as exc:
            return models.Health(ok=False, detail=str(exc))
        assert self._connection is not None
        connected = not self._connection.is_closed and self._connection.connected.is_set()
        return models.Health(
            ok=connected, detail=f"{self.where} {'connected' if connected else 'reconnecting'}"
        )


def _document(incoming: aio_pika.abc.AbstractIncomingMessage) -> inbound.InboundDocument:
    headers: dict[str, Any] = dict(incoming.headers or {})
    return inbound.InboundDocument(
        name=incoming.message_id or f"delivery-tag-{incoming.delivery_tag}",
        content_type=incoming.content_type or "application/octet-stream",
        body=incoming.body,
        headers={
            k: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            for k, v in headers.items()
        },
    )


def _trace_headers(message: models.OutboundMessage) -> dict[str, str]:
    """W3C ``traceparent``/``tracestate`` of this attempt, as AMQP headers, when the gateway
    traces it (the dispatcher puts them in the message's metadata under ``_trace``)."""
    trace = message.metadata.get("_trace")
    if not isinstance(trace, dict):
        return {}
    return {k: v for k in ("traceparent", "tracestate") if isinstance(v := trace.get(k), str)}
