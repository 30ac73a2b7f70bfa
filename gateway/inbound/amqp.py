"""A RabbitMQ queue as a source: consume with bounded prefetch, ack after commit.

``aio_pika.connect_robust`` reconnects (and re-consumes) by itself once connected; the
first connection is retried here with exponential backoff and jitter, the source
reported ``degraded`` meanwhile. A message is acknowledged only after ``Intake.take``
returned (filings committed, a duplicate recognised, or the event stored as rejected).
A store failure nacks it back onto the queue. An ack that cannot be sent (the channel
died) is harmless: the broker redelivers and the idempotency key recognises it.
No aio-pika exception leaves this module.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Any

import anyio
import structlog
import tenacity

from gateway import errors
from gateway.inbound.intake import Intake, Outcome, RawEvent
from gateway.inbound.normalizers import Source
from gateway.inbound.status import SourceStatus

log = structlog.get_logger("gateway.inbound.amqp")

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
STORE_BACKOFF_S = 1.0


def _aio_pika() -> Any:
    try:
        import aio_pika
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise errors.ConfigError(
            "an amqp source needs aio-pika: pip install 'edi-gateway[amqp]'", key="sources"
        ) from exc
    return aio_pika


def redact(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"


class QueueConsumer:
    """Consumes one ``[sources.NAME] kind = "amqp"`` queue until cancelled."""

    def __init__(
        self, *, source: Source, intake: Intake, environ: Mapping[str, str] | None = None
    ) -> None:
        section = source.section
        env = os.environ if environ is None else environ
        url = env.get(section.url_env) if section.url_env else None
        if section.url_env and not url:
            raise errors.ConfigError(
                f"sources.{source.name}.url_env: ${section.url_env} is not set",
                key=f"sources.{source.name}.url_env",
            )
        self.url = url or section.url or DEFAULT_URL
        self.queue_name = section.queue or source.name
        self.source = source
        self.intake = intake
        self.status = SourceStatus(
            kind="amqp", target=f"{redact(self.url)} queue {self.queue_name}"
        )
        self._pika = _aio_pika()
        self._connect_errors = (
            ConnectionError,
            OSError,
            TimeoutError,
            self._pika.exceptions.AMQPError,
        )

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            async for attempt in tenacity.AsyncRetrying(
                retry=tenacity.retry_if_exception_type(self._connect_errors),
                wait=tenacity.wait_exponential_jitter(
                    multiplier=0.5, max=self.source.section.reconnect_max, jitter=0.5
                ),
                before_sleep=self._before_sleep,
                sleep=anyio.sleep,
            ):
                with attempt:
                    await self._consume()
        finally:
            self.status.state = "stopped"

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self.status.degraded(f"broker unavailable: {exc!r}; reconnecting")
        log.warning(
            "source.degraded",
            source=self.source.name,
            error=repr(exc),
            retry_in_s=round(state.upcoming_sleep, 2),
        )

    async def _consume(self) -> None:
        pika = self._pika
        connection = await pika.connect_robust(self.url, timeout=10)
        try:
            connection.close_callbacks.add(self._on_close)
            connection.reconnect_callbacks.add(self._on_reconnect)
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self.source.section.prefetch)
            if self.source.section.declare:
                queue = await channel.declare_queue(self.queue_name, durable=True)
            else:
                queue = await channel.get_queue(self.queue_name, ensure=True)
            self.status.ok()
            log.info("source.consuming", source=self.source.name, queue=self.queue_name)
            async with queue.iterator() as messages:
                async for message in messages:
                    await self._handle(message)
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await connection.close()
                except self._connect_errors as exc:
                    log.info("source.close_failed", source=self.source.name, error=repr(exc))

    def _on_close(self, *_: Any) -> None:
        if self.status.state == "ok":
            self.status.degraded("connection lost; reconnecting")
            log.warning("source.degraded", source=self.source.name, error="connection lost")

    def _on_reconnect(self, *_: Any) -> None:
        self.status.ok()
        log.info("source.reconnected", source=self.source.name)

    def raw_event(self, message: Any) -> RawEvent:
        body = bytes(message.body)
        message_id = message.message_id
        default_key = None
        if not message_id:
            default_key = f"amqp:{self.queue_name}:sha256:{hashlib.sha256(body).hexdigest()}"
        return RawEvent(
            body=body,
            origin=f"amqp:{self.queue_name}",
            event_id=message_id or None,
            content_type=message.content_type,
            headers=dict(message.headers or {}),
            default_key=default_key,
        )

    async def _handle(self, message: Any) -> None:
        # shielded: once taken from the queue, a message is committed and acked (or
        # nacked) even when shutdown cancels the consumer meanwhile
        with anyio.CancelScope(shield=True):
            try:
                taken = await self.intake.take(self.source, self.raw_event(message))
            except errors.Unavailable as exc:
                log.warning("source.store_unavailable", source=self.source.name, error=str(exc))
                await self._settle(message.nack(requeue=True))
                await anyio.sleep(STORE_BACKOFF_S)
                return
            await self._settle(message.ack())
            self.status.count(taken.outcome)
        if taken.outcome is Outcome.REJECTED:
            log.info("source.acked_rejected", source=self.source.name, id=message.message_id)

    async def _settle(self, op: Any) -> None:
        try:
            await op
        except self._connect_errors as exc:
            log.info("source.ack_lost", source=self.source.name, error=repr(exc))
