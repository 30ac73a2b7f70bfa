"""Qpid Proton at the edge of the ``amqp10`` adapter: errors, outcomes, a bounded close.

Proton's exceptions and delivery states never leave ``adapters/``: ``translated`` maps the
exceptions with a table (and the AMQP error conditions that say more than the exception),
``outcome_error`` maps the receiver's disposition, and ``Connection`` is a
``BlockingConnection`` whose ``close`` cannot hang.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import proton
import proton.utils

from gateway import errors

#: how long closing waits for the peer's close, then for the socket to go
CLOSE_S = 2.0

#: library exception → (our error, what it means); the first match wins, so order matters
ERROR_TABLE: tuple[tuple[type[BaseException], type[errors.DeliveryError], str], ...] = (
    (proton.Timeout, errors.TransientError, "no answer from the broker in time"),
    (proton.utils.LinkDetached, errors.TransientError, "link refused or closed by the broker"),
    (proton.utils.ConnectionClosed, errors.TransientError, "connection closed by the broker"),
    (proton.ConnectionException, errors.TransientError, "connection lost"),
    (proton.SessionException, errors.TransientError, "session closed"),
    (proton.LinkException, errors.TransientError, "link refused or closed by the broker"),
    (proton.SSLException, errors.TransientError, "TLS failed"),
    (proton.TransportException, errors.TransientError, "transport failed"),
    (proton.MessageException, errors.MessageError, "message cannot be encoded"),
    (proton.DataException, errors.MessageError, "message cannot be encoded"),
    (proton.ProtonException, errors.TransientError, "AMQP error"),
    (ConnectionError, errors.TransientError, "broker unreachable"),
    (OSError, errors.TransientError, "broker unreachable"),
    (TimeoutError, errors.TransientError, "no answer from the broker in time"),
)
LIBRARY_ERRORS = tuple(exc_type for exc_type, _, _ in ERROR_TABLE)

#: AMQP error condition → our error, where the condition says more than the exception
CONDITION_TABLE: dict[str, type[errors.DeliveryError]] = {
    "amqp:connection:forced": errors.OutageError,  # the broker is closing, e.g. maintenance
    "amqp:resource-limit-exceeded": errors.TransientError,  # a full queue or quota
    "amqp:link:message-size-exceeded": errors.MessageError,
    "amqp:decode-error": errors.MessageError,
}


def condition_of(exc: BaseException) -> str | None:
    """The AMQP error condition name a proton exception carries, if any."""
    for endpoint in ("link", "connection"):
        thing = getattr(exc, endpoint, None)
        condition = getattr(thing, "remote_condition", None)
        if condition is not None:
            return str(condition.name)
    text = str(exc)
    for name in CONDITION_TABLE:
        if name in text:
            return name
    return None


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Re-raise proton/socket errors as our taxonomy, ``from exc``."""
    try:
        yield
    except LIBRARY_ERRORS as exc:
        condition = condition_of(exc)
        detail = str(exc) or type(exc).__name__
        if condition in CONDITION_TABLE:
            raise CONDITION_TABLE[condition](f"{what}: {condition}: {detail}") from exc
        for exc_type, error_type, meaning in ERROR_TABLE:
            if isinstance(exc, exc_type):
                raise error_type(f"{what}: {meaning}: {detail}") from exc
        raise  # pragma: no cover - the table covers LIBRARY_ERRORS


def outcome_error(delivery: Any, where: str) -> errors.DeliveryError | None:
    """None when the receiver accepted the delivery; otherwise the error its outcome means."""
    state = delivery.remote_state
    remote = delivery.remote
    if state == proton.Delivery.ACCEPTED:
        return None
    if state == proton.Delivery.REJECTED:
        condition = remote.condition
        name = str(condition.name) if condition is not None else ""
        text = f"{name}: {condition.description}" if condition is not None else "no reason given"
        error_type = CONDITION_TABLE.get(name, errors.PermanentError)
        return error_type(f"{where}: rejected by the receiver ({text})")
    if state == proton.Delivery.RELEASED:
        return errors.TransientError(f"{where}: released by the receiver (not taken; send again)")
    if state == proton.Delivery.MODIFIED:
        if remote.undeliverable:
            return errors.PermanentError(f"{where}: modified: undeliverable here")
        return errors.TransientError(f"{where}: modified: delivery failed (send again)")
    return errors.TransientError(f"{where}: settled without an outcome (state {state})")


class Connection(proton.utils.BlockingConnection):
    """A BlockingConnection whose ``close`` is bounded, whatever the peer does.

    Proton's ``close`` (also called by its constructor when opening fails) waits without a
    bound for the peer to drop the socket, so a broker that stops answering (frozen, a
    black-holed network) would hang it forever. Here: ask politely for ``CLOSE_S``, then
    close the transport ourselves and let the reactor release the socket.
    """

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True  # proton's handlers raise no LinkDetached/ConnectionClosed now
        conn, container = self.conn, self.container
        if conn is None or container is None:
            return
        transport = conn.transport
        try:
            conn.close()
            self.wait(lambda: not (conn.state & proton.Endpoint.REMOTE_ACTIVE), timeout=CLOSE_S)
        except LIBRARY_ERRORS:
            pass  # no answer: closed from our side below
        finally:
            if transport is not None:
                transport.close_tail()
                transport.close_head()
            conn.free()
            container.timeout = 0.05
            deadline = time.monotonic() + CLOSE_S
            with contextlib.suppress(*LIBRARY_ERRORS):
                # the socket goes once the reactor has seen the transport closed
                rounds_closed = 0
                while time.monotonic() < deadline and container.process():
                    if transport is None or transport.closed:
                        rounds_closed += 1
                        if rounds_closed > 3:
                            break
                container.stop()
                container.process()
            conn.handler = None
            self.conn = None
            container.stop_events()
            # proton infers the attribute as Container from its __init__; its own close()
            # sets None as well
            self.container = None  # type: ignore[assignment]
