"""A real AMQP 1.0 receiving peer on loopback (Qpid Proton's own listener, in a thread).

RabbitMQ 3.10 accepts what it can route and never answers ``rejected``/``released``/
``modified`` (a nack from a full queue aborts the connection instead), so the outcomes a
broker such as Artemis or Service Bus gives are produced here, by a real AMQP 1.0 peer
speaking the protocol over TCP: each incoming message is settled with the next outcome
the test queued. What it received is kept for the test to assert on.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import proton
import proton.handlers
import proton.reactor

from tests.adapters.conftest import free_port


@dataclass
class PeerMessage:
    """One message as the peer received it, and the outcome it gave."""

    id: str
    body: bytes
    properties: dict[str, Any]
    outcome: str


@dataclass
class _State:
    outcomes: deque[str] = field(default_factory=deque)
    received: list[PeerMessage] = field(default_factory=list)
    connections: int = 0


class _Handler(proton.handlers.MessagingHandler):  # type: ignore[misc]
    def __init__(self, url: str, state: _State, started: threading.Event) -> None:
        super().__init__(auto_accept=False, auto_settle=False)
        self.url = url
        self.state = state
        self.started = started
        self.acceptor: Any = None
        self.container: Any = None
        self.open_connections: list[Any] = []

    def on_start(self, event: Any) -> None:
        self.container = event.container
        self.acceptor = event.container.listen(self.url)
        self.started.set()

    def on_connection_opened(self, event: Any) -> None:
        self.state.connections += 1
        self.open_connections.append(event.connection)

    def on_link_opening(self, event: Any) -> None:
        if event.link.is_receiver and event.link.remote_target.address:  # echo the target
            event.link.target.address = event.link.remote_target.address

    def on_message(self, event: Any) -> None:
        outcome = self.state.outcomes.popleft() if self.state.outcomes else "accept"
        message = event.message
        body = message.body
        self.state.received.append(
            PeerMessage(
                id=str(message.id),
                body=bytes(body) if body is not None else b"",
                properties=dict(message.properties or {}),
                outcome=outcome,
            )
        )
        delivery = event.delivery
        kind, _, detail = outcome.partition(":")
        if kind == "accept":
            delivery.update(proton.Delivery.ACCEPTED)
        elif kind == "reject":
            delivery.local.condition = proton.Condition(detail or "amqp:invalid-field", "refused")
            delivery.update(proton.Delivery.REJECTED)
        elif kind == "release":
            delivery.update(proton.Delivery.RELEASED)
        elif kind == "modified":
            delivery.local.failed = detail == "failed"
            delivery.local.undeliverable = detail == "undeliverable"
            delivery.update(proton.Delivery.MODIFIED)
        elif kind == "close":  # e.g. close:amqp:connection:forced
            event.connection.condition = proton.Condition(detail, "closing for maintenance")
            event.connection.close()
            return
        elif kind == "silent":  # never answer: the sender must time out
            return
        elif kind == "freeze":  # a hung broker: sockets stay open, nothing is answered
            self.container.stop()
            return
        delivery.settle()

    def on_stop_peer(self, event: Any) -> None:
        if self.acceptor is not None:
            self.acceptor.close()
        for connection in self.open_connections:
            if connection.state & proton.Endpoint.LOCAL_ACTIVE:
                connection.close()
        self.container.stop()


class Amqp10Peer:
    """Listens on 127.0.0.1:<port>; ``outcomes`` is consumed one per incoming message."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"amqp://127.0.0.1:{self.port}"
        self._state = _State()
        self._started = threading.Event()
        self._injector = proton.reactor.EventInjector()
        self._handler = _Handler(f"127.0.0.1:{self.port}", self._state, self._started)
        self._container = proton.reactor.Container(self._handler)
        self._container.selectable(self._injector)
        self._thread = threading.Thread(target=self._container.run, daemon=True)

    @property
    def outcomes(self) -> deque[str]:
        return self._state.outcomes

    @property
    def received(self) -> list[PeerMessage]:
        return list(self._state.received)

    @property
    def connections(self) -> int:
        return self._state.connections

    def start(self) -> Amqp10Peer:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the AMQP 1.0 peer did not start listening")
        return self

    def stop(self) -> None:
        """Close every connection and stop listening; a second call does nothing."""
        if not self._thread.is_alive():
            return
        self._injector.trigger(proton.reactor.ApplicationEvent("stop_peer"))
        self._thread.join(10)
