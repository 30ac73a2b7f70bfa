"""``amqp10``: send each delivery as one AMQP 1.0 message, settled on the broker's outcome.

AMQP 1.0 is the open protocol of IBM MQ's AMQP channels, ActiveMQ Artemis, Azure Service
Bus, Solace and RabbitMQ's ``rabbitmq_amqp1_0`` plugin. The client is Apache Qpid Proton
(``python-qpid-proton``, the ``amqp10`` extra). Proton runs its own reactor, so each
connection here is a ``proton.utils.BlockingConnection`` driven from a worker thread,
one call at a time (a lock the thread holds); the event loop never blocks, and a
cancelled send returns at once.

A message is sent unsettled (at-least-once) and ``send`` waits for the receiver's outcome:

* ``accepted``                                     → ``Receipt(status="accepted")``;
* ``rejected`` (the message is invalid for it)     → ``PermanentError``, or, when the
  condition says the message itself cannot be carried (too large, undecodable),
  ``MessageError``; a ``resource-limit-exceeded`` rejection (a full queue) is transient;
* ``released`` (not acted upon), or ``modified``
  with ``delivery-failed``                         → ``TransientError`` (send again);
* ``modified`` with ``undeliverable-here``         → ``PermanentError``;
* no outcome within ``timeout``, a refused link,
  a dropped or refused connection                  → ``TransientError``
  (``OutageError`` when the broker closes the connection with ``connection:forced``,
  i.e. it is shutting down or in maintenance).

The message id and the ``Idempotency-Key`` application property are the delivery id, so
a consumer can drop the copy a lost outcome makes us send again. Filing fields go into
application properties; one holding a control character is refused before sending
(``MessageError``).

With ``reply_address`` set, ``receive()`` yields that node's messages (see
``adapters.inbound``): ``True`` accepts, ``False`` rejects, and a message without a
verdict is left unsettled, so the broker hands it out again.

Proton's exceptions never leave ``adapters/``: ``amqp10_proton`` maps them with tables,
``from exc``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import AsyncGenerator, Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import unquote

import anyio
import anyio.lowlevel
import proton
import proton.utils
from pydantic import AnyUrl, Field, UrlConstraints

from adapters import amqp10_proton, base, inbound
from adapters.base import Duration
from gateway import errors, models

Amqp10Url = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["amqp", "amqps"], host_required=True)]
T = TypeVar("T")

#: C0 and C1 control characters and DEL: never in a message property
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: how long one blocking receive waits before the loop looks for cancellation again
_RECEIVE_POLL_S = 0.5
#: how long check() lets pending I/O run on an idle connection
_PROBE_S = 0.05


class Amqp10Options(base.AdapterOptions):
    url: Amqp10Url = Field(description="broker URL, e.g. amqps://user@mq.example:5671")
    address: str = Field(
        min_length=1,
        description="target node: a queue or topic (RabbitMQ: /amq/queue/NAME or "
        "/exchange/X/KEY; Artemis and Service Bus: the queue name)",
    )
    password_env: str | None = Field(
        default=None, description="env var holding the password (instead of one in the URL)"
    )
    virtual_host: str | None = Field(
        default=None, min_length=1, description="hostname sent in AMQP open (RabbitMQ: vhost:NAME)"
    )
    timeout: Duration = Field(default=30.0, gt=0, description="connect / outcome timeout")
    reply_address: str | None = Field(
        default=None, min_length=1, description="source node receive() reads acks from, if any"
    )
    prefetch: int = Field(default=10, ge=1, le=10_000, description="link credit for replies")


class _Link:
    """One BlockingConnection and, once asked for, one sender on it. Not thread-safe."""

    def __init__(self, connection: proton.utils.BlockingConnection) -> None:
        self.connection = connection
        self.sender: Any = None

    def close(self) -> None:
        with contextlib.suppress(*amqp10_proton.LIBRARY_ERRORS):
            self.connection.close()


class Amqp10Adapter(base.BaseAdapter):
    """Sends each delivery as one durable AMQP 1.0 message to ``address``."""

    Options = Amqp10Options

    def __init__(self, *, name: str, options: Amqp10Options) -> None:
        super().__init__(name=name, options=options)
        self.options: Amqp10Options = options
        self._link: _Link | None = None
        # one thread at a time on the connection; held by the worker thread itself, so a
        # call abandoned on cancellation still keeps the next one off the connection
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        """The broker and node, without credentials, for messages."""
        o = self.options
        return f"{o.url.host}:{o.url.port or 5672} {o.address!r}"

    # --- blocking parts, run in a worker thread under the lock ---------------------------

    def _connect(self) -> proton.utils.BlockingConnection:
        o = self.options
        password = unquote(o.url.password) if o.url.password else None
        if o.password_env is not None:
            password = os.environ.get(o.password_env)
            if not password:
                raise errors.PermanentError(f"env var {o.password_env} (AMQP password) is not set")
        kwargs: dict[str, Any] = {"container_id": f"edi-gateway {self.name}"}
        if o.url.username:
            kwargs["user"] = unquote(o.url.username)
            kwargs["password"] = password or ""
        if o.virtual_host:
            kwargs["virtual_host"] = o.virtual_host
        port = o.url.port or (5671 if o.url.scheme == "amqps" else 5672)
        url = f"{o.url.scheme}://{o.url.host}:{port}"  # credentials go apart, not in messages
        return amqp10_proton.Connection(url, timeout=o.timeout, **kwargs)

    def _ready(self) -> _Link:
        if self._link is None:
            with amqp10_proton.translated(f"connecting to {self.where}"):
                self._link = _Link(self._connect())
        if self._link.sender is None:
            try:
                with amqp10_proton.translated(f"attaching to {self.where}"):
                    self._link.sender = self._link.connection.create_sender(self.options.address)
            except errors.DeliveryError:
                self._drop()
                raise
        return self._link

    def _drop(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.close()

    def _probe(self) -> None:
        """Attach if needed, then let pending I/O run briefly: a dead link shows up here."""
        link = self._ready()
        try:
            with amqp10_proton.translated(f"checking {self.where}"):
                try:
                    link.connection.wait(lambda: False, timeout=_PROBE_S)
                except proton.Timeout:
                    return  # nothing went wrong while we listened
        except errors.DeliveryError:
            self._drop()
            raise

    def _send_blocking(self, message: proton.Message) -> str:
        link = self._ready()
        try:
            with amqp10_proton.translated(f"sending to {self.where}"):
                delivery = link.sender.link.send(message)
                link.connection.wait(
                    lambda: bool(delivery.settled or delivery.remote_state),
                    msg=f"waiting for the outcome from {self.where}",
                )
                error = amqp10_proton.outcome_error(delivery, f"sending to {self.where}")
                delivery.settle()
        except errors.DeliveryError:
            self._drop()  # a lost outcome or link: start again on a fresh connection
            raise
        if error is not None:
            raise error
        return "accepted"

    # --- the adapter --------------------------------------------------------------------

    def _locked(self, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            return fn(*args)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` in a worker thread; a cancelled caller returns at once (the thread
        finishes within ``timeout``: a message it was sending may still arrive, under the
        same id, like any resend)."""
        return await anyio.to_thread.run_sync(self._locked, fn, *args, abandon_on_cancel=True)

    async def open(self) -> None:
        await self._call(self._ready)

    def _message(self, message: models.OutboundMessage) -> proton.Message:
        properties = {
            "Idempotency-Key": message.delivery_id,
            "X-EDI-Filing-Id": message.filing_id,
            "X-EDI-Filing-Type": message.filing_type.value,
            "X-EDI-Environment": message.environment.value,
            "X-EDI-Reference": message.reference,
            "X-EDI-Filer-Code": message.filer_code,
            "X-EDI-Attempt": message.attempt,
        }
        texts = {**properties, "content-type": message.content_type}
        for key, value in texts.items():
            if isinstance(value, str) and (bad := _CONTROL.search(value)):
                raise errors.MessageError(
                    f"{self.where}: property {key} carries a control character "
                    f"(U+{ord(bad.group()):04X}); refusing to send this message"
                )
        return proton.Message(
            id=message.delivery_id,
            correlation_id=message.filing_id,
            subject=message.filing_type.value,
            content_type=message.content_type,
            durable=True,
            body=message.body,  # bytes: an AMQP data section, sent as is
            properties=properties,
        )

    async def send(self, message: models.OutboundMessage) -> models.Receipt:
        await anyio.lowlevel.checkpoint()
        outgoing = self._message(message)
        status = await self._call(self._send_blocking, outgoing)
        detail = {"address": self.options.address}
        return models.Receipt(transport_id=message.delivery_id, status=status, detail=detail)

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._locked, self._drop)

    async def check(self) -> models.Health:
        try:
            await self._call(self._probe)
        except errors.DeliveryError as exc:
            return models.Health(ok=False, detail=str(exc))
        return models.Health(ok=True, detail=f"{self.where} attached")

    async def receive(self) -> AsyncGenerator[inbound.InboundDocument, bool | None]:
        """Messages of ``reply_address``; verdict True/None → accept, False → reject."""
        address = self.options.reply_address
        if address is None:
            await anyio.sleep_forever()
            return
        what = f"receiving from {self.options.url.host} {address!r}"
        with amqp10_proton.translated(what):
            connection = await anyio.to_thread.run_sync(self._connect)
        try:
            with amqp10_proton.translated(what):
                receiver = await anyio.to_thread.run_sync(
                    lambda: connection.create_receiver(address, credit=self.options.prefetch)
                )
            while True:
                with amqp10_proton.translated(what):
                    incoming = await anyio.to_thread.run_sync(_receive_one, receiver)
                if incoming is None:
                    continue
                verdict = yield _document(incoming)
                with amqp10_proton.translated(f"settling a message from {address!r}"):
                    if verdict is False:
                        await anyio.to_thread.run_sync(receiver.reject)
                    else:
                        await anyio.to_thread.run_sync(receiver.accept)
        finally:
            # unsettled deliveries (one without a verdict, prefetched ones) go back to the
            # broker when the connection closes
            with anyio.CancelScope(shield=True), contextlib.suppress(*amqp10_proton.LIBRARY_ERRORS):
                await anyio.to_thread.run_sync(connection.close)


def _receive_one(receiver: Any) -> proton.Message | None:
    """One message, or None when none came within the poll interval."""
    try:
        return receiver.receive(timeout=_RECEIVE_POLL_S)  # type: ignore[no-any-return]
    except proton.Timeout:
        return None


def _document(incoming: proton.Message) -> inbound.InboundDocument:
    body = incoming.body
    if isinstance(body, bytes | bytearray | memoryview):
        raw = bytes(body)
    elif isinstance(body, str):
        raw = body.encode("utf-8")
    elif body is None:
        raw = b""
    else:  # an amqp-value section holding a map or list: hand it on as JSON
        raw = json.dumps(body, default=str).encode("utf-8")
    # proton leaves ``properties`` unannotated (None until a message carries some)
    properties: dict[Any, Any] = incoming.properties or {}
    return inbound.InboundDocument(
        name=str(incoming.id) if incoming.id is not None else "amqp10-message",
        content_type=str(incoming.content_type or "application/octet-stream"),
        body=raw,
        headers={str(k): str(v) for k, v in properties.items()},
    )
