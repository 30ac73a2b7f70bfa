"""CloudEvents 1.0 in, through the ``cloudevents`` SDK (2.x, ``cloudevents.core``).

The only module that imports the SDK: it reads HTTP (structured, binary, batch) and
RabbitMQ messages into an ``Envelope`` and translates every SDK failure into
``errors.MalformedInput`` (400: not JSON) or ``errors.InvalidInput`` (422: the
attribute at fault), never anything else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from cloudevents.core import exceptions as ce_errors
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.bindings import rabbitmq as ce_rabbitmq
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from gateway import errors, jsonio

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
_FORMAT = JSONFormat()
_STRING_ATTRS = ("id", "source", "type", "specversion", "subject", "datacontenttype")


@dataclass(frozen=True, slots=True)
class Envelope:
    """The CloudEvent attributes the gateway uses, and its ``data`` (the internal event)."""

    id: str
    source: str
    type: str
    data: Any
    subject: str | None = None
    time: datetime | None = None
    datacontenttype: str | None = None
    extensions: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The idempotency key the spec gives us: ``id`` is unique per ``source``."""
        return f"ce:{self.source}#{self.id}"


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def is_http_cloudevent(headers: Mapping[str, str]) -> bool:
    """True for a structured (content type) or binary (``ce-specversion``) CloudEvent."""
    return media_type(headers.get("Content-Type")) in (STRUCTURED, BATCH) or "ce-specversion" in {
        k.lower() for k in headers
    }


def looks_structured(document: Any) -> bool:
    """A decoded JSON document that is a structured CloudEvent (has ``specversion``)."""
    return isinstance(document, dict) and "specversion" in document


def _fail(exc: Exception, prefix: str) -> errors.GatewayError:
    if isinstance(exc, ce_errors.CloudEventValidationError):
        details = [
            {"loc": f"{prefix}{attr}", "msg": str(errs[0])} for attr, errs in exc.errors.items()
        ]
        return errors.InvalidInput(
            f"not a valid CloudEvent: {details[0]['loc']}: {details[0]['msg']}", details=details
        )
    attr = getattr(exc, "attribute_name", None) or "body"
    return errors.InvalidInput(
        f"not a valid CloudEvent: {prefix}{attr}: {exc}",
        details=[{"loc": f"{prefix}{attr}", "msg": str(exc)}],
    )


def _precheck(document: Any, prefix: str) -> None:
    """Catch what the SDK would turn into TypeError/AttributeError, naming the field."""
    if not isinstance(document, dict):
        raise errors.InvalidInput(
            "a structured CloudEvent is a JSON object",
            details=[{"loc": prefix.rstrip(".") or "body", "msg": "expected an object"}],
        )
    for attr in (*_STRING_ATTRS, "time"):
        if attr in document and not isinstance(document[attr], str):
            raise errors.InvalidInput(
                f"CloudEvent attribute {attr!r} must be a string",
                details=[{"loc": f"{prefix}{attr}", "msg": "expected a string"}],
            )
    _check_time(document.get("time"), f"{prefix}time")
    if document.get("specversion") != "1.0":
        raise errors.InvalidInput(
            "only CloudEvents specversion 1.0 is accepted",
            details=[{"loc": f"{prefix}specversion", "msg": "must be '1.0'"}],
        )


def _check_time(value: str | None, loc: str) -> None:
    if value is None:
        return
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise errors.InvalidInput(
            f"CloudEvent time {value!r} is not an RFC 3339 timestamp",
            details=[{"loc": loc, "msg": "expected an RFC 3339 timestamp"}],
        ) from exc
    if when.tzinfo is None:
        raise errors.InvalidInput(
            "CloudEvent time needs a UTC offset", details=[{"loc": loc, "msg": "no offset"}]
        )


def _envelope(event: Any) -> Envelope:
    attrs = dict(event.get_attributes())
    known = {"id", "source", "type", "specversion", "subject", "time", "datacontenttype"}
    data = event.get_data()
    if isinstance(data, bytes | bytearray):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            data = bytes(data)
    return Envelope(
        id=attrs["id"],
        source=attrs["source"],
        type=attrs["type"],
        data=data,
        subject=attrs.get("subject"),
        time=attrs.get("time"),
        datacontenttype=attrs.get("datacontenttype"),
        extensions={k: v for k, v in attrs.items() if k not in known and k != "dataschema"},
    )


def from_document(document: Any, *, prefix: str = "") -> Envelope:
    """One structured CloudEvent already decoded from JSON (a batch item, a file)."""
    _precheck(document, prefix)
    try:
        event = _FORMAT.read(CloudEvent, json.dumps(document).encode())
    except (ce_errors.BaseCloudEventException, ValueError, TypeError) as exc:
        raise _fail(exc, prefix) from exc
    return _envelope(event)


def _decode(body: bytes) -> Any:
    return jsonio.loads(body, what="the CloudEvent")


def from_http(headers: Mapping[str, str], body: bytes) -> Envelope:
    """A CloudEvent from an HTTP request, structured or binary mode."""
    if media_type(headers.get("Content-Type")) == STRUCTURED:
        return from_document(_decode(body))
    lowered = {k.lower(): v for k, v in headers.items()}
    missing = [a for a in ("id", "source", "type") if not lowered.get(f"ce-{a}")]
    if missing:
        raise errors.InvalidInput(
            f"binary-mode CloudEvent lacks the ce-{missing[0]} header",
            details=[{"loc": f"header.ce-{a}", "msg": "required"} for a in missing],
        )
    if lowered.get("ce-specversion") != "1.0":
        raise errors.InvalidInput(
            "only CloudEvents specversion 1.0 is accepted",
            details=[{"loc": "header.ce-specversion", "msg": "must be '1.0'"}],
        )
    _check_time(unquote(lowered.get("ce-time") or "") or None, "header.ce-time")
    message = ce_http.HTTPMessage(headers=dict(lowered), body=body)
    try:
        event = ce_http.from_binary(message, _FORMAT, CloudEvent)
    except (ce_errors.BaseCloudEventException, ValueError, TypeError) as exc:
        raise _fail(exc, "header.ce-") from exc
    return _envelope(event)


def from_batch(body: bytes) -> list[Envelope | errors.GatewayError]:
    """A JSON array of structured CloudEvents; a bad item becomes its own error."""
    document = _decode(body)
    if not isinstance(document, list):
        raise errors.InvalidInput(
            "a CloudEvents batch is a JSON array",
            details=[{"loc": "body", "msg": "expected an array"}],
        )
    not_objects = [i for i, item in enumerate(document) if not isinstance(item, dict)]
    if not_objects:  # the batch's shape is wrong as a whole, as for plain batches
        raise errors.InvalidInput(
            "every item of a CloudEvents batch must be a JSON object",
            details=[{"loc": f"[{i}]", "msg": "expected an object"} for i in not_objects[:20]],
        )
    out: list[Envelope | errors.GatewayError] = []
    for i, item in enumerate(document):
        try:
            out.append(from_document(item, prefix=f"[{i}]."))
        except errors.GatewayError as exc:
            out.append(exc)
    return out


def from_amqp(headers: Mapping[str, Any], content_type: str | None, body: bytes) -> Envelope | None:
    """A CloudEvent from a RabbitMQ message (structured or binary), or None if it is none."""
    if media_type(content_type) == STRUCTURED:
        return from_document(_decode(body))
    ce_headers = {str(k).lower(): v for k, v in headers.items() if str(k).lower().startswith("ce-")}
    if "ce-specversion" not in ce_headers:
        return None
    text_headers = {
        k: v.decode() if isinstance(v, bytes | bytearray) else str(v) for k, v in ce_headers.items()
    }
    _check_time(text_headers.get("ce-time"), "header.ce-time")
    message = ce_rabbitmq.RabbitMQMessage(
        headers=text_headers, content_type=content_type, body=body
    )
    try:
        event = ce_rabbitmq.from_binary(message, _FORMAT, CloudEvent)
    except (ce_errors.BaseCloudEventException, ValueError, TypeError) as exc:
        raise _fail(exc, "header.ce-") from exc
    return _envelope(event)
