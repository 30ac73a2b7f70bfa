"""The whole exception taxonomy of edi-gateway.

This module imports nothing from the project. Each exception's docstring is its
default message; the data a handler needs travels as attributes.

Two families:

* ``DeliveryError`` — what an adapter raises from ``send`` to tell the dispatcher
  how the attempt ended. ``OutageError`` is a *sibling* of ``TransientError``, not a
  subclass, so that no handler can spend retry budget on an outage by accident.
* ``GatewayError`` — what the core raises to its callers (API, CLI); each carries a
  stable machine ``code`` and the HTTP status the API maps it to.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class EdiGatewayError(Exception):
    """An edi-gateway error."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip().splitlines()[0])

    @property
    def message(self) -> str:
        return str(self)


# --- adapter outcomes ---------------------------------------------------------------


class DeliveryError(EdiGatewayError):
    """The delivery attempt failed."""


class TransientError(DeliveryError):
    """The attempt failed but may succeed later; retry with backoff."""

    def __init__(self, message: str | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        #: seconds the receiver asked us to wait (e.g. an HTTP Retry-After), if any
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """The receiver refused the message for good; retrying cannot help."""


class MessageError(PermanentError):
    """The message itself cannot be encoded or carried (a header or file name the
    transport refuses, too large for it): that delivery is dead at once, and the failure
    never counts against the transport's breaker (the receiver was not at fault)."""


class OutageError(DeliveryError):
    """The receiver is down (an outage); defer without spending an attempt."""

    def __init__(
        self,
        message: str | None = None,
        *,
        until: datetime | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        #: when the receiver said it will be back, if it said so
        self.until = until
        #: the same as seconds from now (e.g. an HTTP Retry-After); the dispatcher prefers
        #: it, reading "now" from its own clock
        self.retry_after = retry_after


# --- core errors, mapped to API statuses ----------------------------------------------


class GatewayError(EdiGatewayError):
    """The gateway could not do what was asked."""

    code = "gateway_error"
    status = 400

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        super().__init__(message)
        #: structured details (field paths, conflicting ids, …) for the caller
        self.details = details


class InvalidInput(GatewayError):
    """The request is invalid."""

    code = "invalid"
    status = 422


class InvalidEvent(InvalidInput):
    """An inbound event cannot become a filing (raised by normalizers, naming the field)."""

    def __init__(
        self, message: str | None = None, *, field: str | None = None, details: Any = None
    ) -> None:
        if details is None and field is not None:
            details = [{"loc": field, "msg": message or self.__doc__}]
        if field is not None and message is not None and not message.startswith(field):
            message = f"{field}: {message}"
        super().__init__(message, details=details)
        #: the path in the source event at fault, e.g. ``data.shipment.mode``
        self.field = field


class MalformedInput(GatewayError):
    """The request body is not well-formed."""

    code = "malformed"
    status = 400


class Unroutable(GatewayError):
    """No route sends this filing to any adapter."""

    code = "unroutable"
    status = 422


class IdempotencyKeyReused(GatewayError):
    """This idempotency key was already used with a different request body."""

    code = "idempotency_key_reused"
    status = 422


class NotFound(GatewayError):
    """No such resource."""

    code = "not_found"
    status = 404


class Conflict(GatewayError):
    """The resource's current state forbids this action."""

    code = "conflict"
    status = 409


class Refused(Conflict):
    """The delivery lifecycle does not allow this action now (``gateway.rules.lifecycle``)."""

    def __init__(self, code: str, message: str, *, details: Any = None) -> None:
        super().__init__(message, details=details)
        #: the refusal's code from the transition table, e.g. ``delivery_in_flight``
        self.code = code


class Unauthorized(GatewayError):
    """A valid bearer token is required."""

    code = "unauthorized"
    status = 401


class Forbidden(GatewayError):
    """The token lacks the scope this action needs."""

    code = "forbidden"
    status = 403


class OriginRefused(Forbidden):
    """This request's Host or Origin is not one the gateway serves (cross-site or DNS
    rebinding); see [gateway] allowed_hosts and allowed_origins."""

    code = "origin_refused"


class UnsupportedMediaType(GatewayError):
    """A write must carry a JSON (or the declared EDI/CloudEvents) content type."""

    code = "unsupported_media_type"
    status = 415


class PayloadTooLarge(GatewayError):
    """The request body is larger than the gateway accepts."""

    code = "too_large"
    status = 413


class Unavailable(GatewayError):
    """The gateway cannot take this request right now; try again later."""

    code = "unavailable"
    status = 503

    def __init__(
        self, message: str | None = None, *, details: Any = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class QuotaExceeded(Unavailable):
    """A filer's or a token's intake quota is used up; try again after ``retry_after``."""

    code = "quota_exceeded"
    status = 429


class StoreError(Unavailable):
    """The store failed."""

    code = "store_unavailable"


class ConfigError(EdiGatewayError):
    """The configuration is invalid."""

    def __init__(self, message: str | None = None, *, key: str | None = None) -> None:
        super().__init__(message)
        #: dotted path of the key at fault, when one is known
        self.key = key
