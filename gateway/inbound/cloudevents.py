"""CloudEvents 1.0 in, exactly as the spec (v1.0.2) and its bindings say.

The only module that imports the ``cloudevents`` SDK (2.x, ``cloudevents.core``): it reads
HTTP (structured, binary, batch) and AMQP messages into an ``Envelope`` and translates every
failure into ``errors.MalformedInput`` (400) or ``errors.InvalidInput`` (422, the attribute
at fault), never anything else.

* The REQUIRED attributes (``id``, ``source``, ``specversion``, ``type``) are never invented:
  one that is missing (or null) is a 400 naming it. The SDK fills a missing ``id`` with a
  UUID, which would file every redelivery again; we check before it can.
* A null OPTIONAL attribute is an absent one (json-format §3: ``"subject": null``).
* Binary mode reads the attributes from ``ce-`` headers (HTTP, percent-decoded), from the
  AMQP 1.0 binding's ``cloudEvents:`` / ``cloudEvents_`` application properties (plain
  headers on RabbitMQ 4, an encoded section on RabbitMQ 3.x: ``amqp10``), and from
  the ``ce-`` / ``ce_`` headers other producers put on AMQP 0-9-1 messages, as the RabbitMQ
  consumer sees each of them (native AMQP timestamps and numbers included).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from cloudevents.core import exceptions as ce_errors
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from gateway import errors
from gateway.encoding import jsonio
from gateway.inbound import amqp10

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
_FORMAT = JSONFormat()
REQUIRED = ("id", "source", "specversion", "type")
_STRING_ATTRS = ("id", "source", "type", "specversion", "subject", "datacontenttype")
#: binary-mode attribute prefixes: HTTP and AMQP 0-9-1 headers, AMQP 1.0 properties
_PREFIXES = ("ce-", "ce_", "cloudevents:", "cloudevents_")


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
    """True for a structured (content type) or binary CloudEvent: a request carrying any
    REQUIRED attribute as a ``ce-`` header (so a missing ``ce-specversion`` is named, not
    read as a plain filing)."""
    if media_type(headers.get("Content-Type")) in (STRUCTURED, BATCH):
        return True
    return bool({k.lower() for k in headers} & {f"ce-{a}" for a in REQUIRED})


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


def _precheck(document: Any, prefix: str) -> dict[str, Any]:
    """The event without its null OPTIONAL attributes; refuse what the SDK would invent or
    turn into TypeError/AttributeError, naming the attribute."""
    if not isinstance(document, dict):
        raise errors.InvalidInput(
            "a structured CloudEvent is a JSON object",
            details=[{"loc": prefix.rstrip(".") or "body", "msg": "expected an object"}],
        )
    _require(document, prefix)
    event: dict[str, Any] = {k: v for k, v in document.items() if v is not None}
    for attr in (*_STRING_ATTRS, "time"):
        if attr in event and not isinstance(event[attr], str):
            raise errors.InvalidInput(
                f"CloudEvent attribute {attr!r} must be a string",
                details=[{"loc": f"{prefix}{attr}", "msg": "expected a string"}],
            )
    _check_time(event.get("time"), f"{prefix}time")
    if event.get("specversion") != "1.0":
        raise errors.InvalidInput(
            "only CloudEvents specversion 1.0 is accepted",
            details=[{"loc": f"{prefix}specversion", "msg": "must be '1.0'"}],
        )
    encoded = event.get("data_base64")
    if encoded is not None and not _is_base64(encoded):
        raise errors.InvalidInput(
            "CloudEvent data_base64 is not base64 text",
            details=[{"loc": f"{prefix}data_base64", "msg": "expected base64 text"}],
        )
    return event


def _is_base64(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _require(attrs: Mapping[str, Any], prefix: str) -> None:
    """400 for each REQUIRED attribute that is missing, null or empty (never invented)."""
    missing = [a for a in REQUIRED if attrs.get(a) is None or attrs.get(a) == ""]
    if missing:
        raise errors.MalformedInput(
            f"the CloudEvent lacks the REQUIRED attribute {prefix}{missing[0]}",
            details=[{"loc": f"{prefix}{a}", "msg": "required"} for a in missing],
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


def _envelope(event: Any, *, timed: bool) -> Envelope:
    attrs = dict(event.get_attributes())
    if not timed:  # the SDK sets time to now when the event has none: drop the invention
        attrs.pop("time", None)
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
    document = _precheck(document, prefix)
    try:
        event = _FORMAT.read(CloudEvent, json.dumps(document).encode())
    except (ce_errors.BaseCloudEventException, ValueError, TypeError) as exc:
        raise _fail(exc, prefix) from exc
    return _envelope(event, timed="time" in document)


def _decode(body: bytes) -> Any:
    return jsonio.loads(body, what="the CloudEvent")


def from_http(headers: Mapping[str, str], body: bytes) -> Envelope:
    """A CloudEvent from an HTTP request, structured or binary mode."""
    if media_type(headers.get("Content-Type")) == STRUCTURED:
        return from_document(_decode(body))
    attrs = {
        k.lower()[3:]: unquote(v)  # http binding §3.1.3.2: values are percent-encoded
        for k, v in headers.items()
        if k.lower().startswith("ce-")
    }
    return _binary(attrs, headers.get("Content-Type"), body, loc="header.ce-")


def from_batch(body: bytes) -> list[Envelope | errors.GatewayError]:
    """A JSON array of structured CloudEvents (possibly empty); a bad item is its own error."""
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


def amqp_attributes(headers: Mapping[str, Any]) -> dict[str, Any]:
    """CloudEvent attributes from AMQP message headers / application properties, by any of
    the prefixes producers use (``cloudEvents:``, ``cloudEvents_``, ``ce-``, ``ce_``)."""
    attrs: dict[str, Any] = {}
    for key, value in headers.items():
        name = str(key)
        lowered = name.lower()
        for prefix in _PREFIXES:
            if lowered.startswith(prefix) and len(name) > len(prefix):
                attrs[lowered[len(prefix) :]] = value
                break
    return attrs


def from_amqp(headers: Mapping[str, Any], content_type: str | None, body: bytes) -> Envelope | None:
    """A CloudEvent from an AMQP message (structured or binary), or None if it is none."""
    if media_type(content_type) == STRUCTURED:
        return from_document(_decode(body))
    headers = amqp10.expand(headers)  # RabbitMQ 3.x: AMQP 1.0 properties still encoded
    attrs = amqp_attributes(headers)
    if "specversion" not in attrs:
        return None
    spec_key = next(str(k) for k in headers if str(k).lower().endswith("specversion"))
    return _binary(attrs, content_type, body, loc=f"header.{spec_key[: -len('specversion')]}")


def _binary(attrs: dict[str, Any], content_type: str | None, body: bytes, *, loc: str) -> Envelope:
    """Binary mode: the attributes from headers/properties, the body as ``data``."""
    attrs = {k: _text(v) for k, v in attrs.items() if v is not None}
    _require(attrs, loc)
    if attrs["specversion"] != "1.0":
        raise errors.InvalidInput(
            "only CloudEvents specversion 1.0 is accepted",
            details=[{"loc": f"{loc}specversion", "msg": "must be '1.0'"}],
        )
    for attr in _STRING_ATTRS:
        if attr in attrs and not isinstance(attrs[attr], str):
            raise errors.InvalidInput(
                f"CloudEvent attribute {attr!r} must be a string",
                details=[{"loc": f"{loc}{attr}", "msg": "expected a string"}],
            )
    timed = "time" in attrs
    if timed:
        attrs["time"] = _timestamp(attrs["time"], f"{loc}time")
    if content_type:
        attrs["datacontenttype"] = content_type
    try:
        data = _FORMAT.read_data(body, attrs.get("datacontenttype"))
        event = CloudEvent(attrs, data)
    except (ce_errors.BaseCloudEventException, ValueError, TypeError) as exc:
        raise _fail(exc, loc) from exc
    return _envelope(event, timed=timed)


def _text(value: Any) -> Any:
    """AMQP header values as the consumer sees them: bytes are UTF-8 text."""
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value)
    return value


def _timestamp(value: Any, loc: str) -> datetime:
    """``time`` as a string (RFC 3339), an AMQP timestamp (datetime) or epoch milliseconds."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=UTC)  # AMQP 1.0 timestamp: ms
    if not isinstance(value, str):
        raise errors.InvalidInput(
            "CloudEvent time must be a timestamp",
            details=[{"loc": loc, "msg": "expected an RFC 3339 timestamp"}],
        )
    _check_time(value, loc)
    return datetime.fromisoformat(value)
