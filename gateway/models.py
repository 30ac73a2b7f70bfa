"""The small, stable contract: frozen pydantic models and StrEnums.

Adapters may import this module (and ``gateway.errors``) and nothing else of the
core. ``StrEnum`` values are the words the store, the API and the logs all use.

Why one module: it is the contract adapters and external services code against, and the
architecture test keeps it a leaf; one file an adapter author reads top to bottom beats a
package whose split would only follow our internals.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

#: the canonical JSON of ``gateway.audit.chain.canonical`` (sorted keys, no spaces, UTF-8)
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
#: ``json.dumps(v, separators=(",", ":"), ensure_ascii=False)``, built once
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
#: what orjson spells as the json module does, byte for byte (every str, every int, and
#: sorted keys, checked over all of Unicode); a float is not (``1e+16`` is ``1e16``, NaN
#: ``null``), nor is any other type sure to be
_SAME_SPELLING = frozenset({str, int, bool, type(None)})
_CONTAINERS = frozenset({dict, list, tuple})


def json_bytes(value: Any, *, sort_keys: bool = False) -> bytes:
    """``value`` as the json module writes it compactly (``ensure_ascii=False``, UTF-8),
    bytes that are hashed and sent, so their spelling must never change.

    orjson writes it several times faster, and alike, when ``value`` holds only JSON objects and
    arrays of strings, integers, booleans and null (a stored filing's fields and payload,
    most of the time); anything else goes through the json module.
    """
    if _plain_json(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
        except TypeError:  # an int past 64 bits, a key not a str, a lone surrogate
            pass
    encoder = _CANONICAL_JSON if sort_keys else _COMPACT_JSON
    return encoder.encode(value).encode()


def _plain_json(value: Any) -> bool:
    """True when ``value`` nests only dicts, lists and tuples of the types orjson spells
    as the json module does."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:  # a key that is not a str: orjson refuses it (TypeError)
            children = item.values()
        elif kind is list or kind is tuple:
            children = item
        else:
            return kind in _SAME_SPELLING
        for child in children:
            kind = type(child)
            if kind in _CONTAINERS:
                stack.append(child)
            elif kind not in _SAME_SPELLING:
                return False
    return True


class FilingType(StrEnum):
    """The ACE activity a filing belongs to."""

    ISF = "isf"
    MANIFEST_AIR = "manifest.air"
    MANIFEST_OCEAN = "manifest.ocean"
    MANIFEST_RAIL = "manifest.rail"
    MANIFEST_TRUCK = "manifest.truck"
    INBOND = "inbond"
    ENTRY = "entry"
    ENTRY_SUMMARY = "entry_summary"
    E214 = "e214"
    PROTEST = "protest"
    POST_SUMMARY_CORRECTION = "post_summary_correction"
    RECONCILIATION = "reconciliation"
    DRAWBACK = "drawback"
    DIS_DOCUMENT = "dis_document"
    EXPORT_EEI = "export.eei"
    EXPORT_MANIFEST = "export.manifest"


class Environment(StrEnum):
    """Which ACE environment a filing is meant for."""

    CERT = "cert"
    PRODUCTION = "production"


class DeliveryState(StrEnum):
    """Where one filing stands with one adapter."""

    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    WAITING_RETRY = "waiting_retry"
    DEFERRED = "deferred"
    BLOCKED = "blocked"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    REJECTED = "rejected"
    DEAD = "dead"
    CANCELLED = "cancelled"


#: states a delivery never leaves by itself (an operator may still act on some)
FINAL_STATES = frozenset(
    {
        DeliveryState.DELIVERED,
        DeliveryState.ACKNOWLEDGED,
        DeliveryState.REJECTED,
        DeliveryState.DEAD,
        DeliveryState.CANCELLED,
    }
)
#: states in which a delivery still waits for the dispatcher
ACTIVE_STATES = frozenset(
    {
        DeliveryState.PENDING,
        DeliveryState.IN_FLIGHT,
        DeliveryState.WAITING_RETRY,
        DeliveryState.DEFERRED,
        DeliveryState.BLOCKED,
    }
)
#: states of a predecessor that block the rest of its ordering key
BLOCKING_STATES = frozenset({DeliveryState.DEAD, DeliveryState.REJECTED})


class FilingStatus(StrEnum):
    """A filing's status, derived from its deliveries."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    RETRYING = "retrying"
    DEFERRED = "deferred"
    BLOCKED = "blocked"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    REJECTED = "rejected"
    DEAD = "dead"
    CANCELLED = "cancelled"


def derive_status(states: list[DeliveryState]) -> FilingStatus:
    """The filing status for the states of its deliveries (most urgent first)."""
    s = set(states)
    if not s or s == {DeliveryState.CANCELLED}:
        return FilingStatus.CANCELLED
    for state, status in (
        (DeliveryState.DEAD, FilingStatus.DEAD),
        (DeliveryState.REJECTED, FilingStatus.REJECTED),
        (DeliveryState.BLOCKED, FilingStatus.BLOCKED),
    ):
        if state in s:
            return status
    done = s - {DeliveryState.CANCELLED}
    if done == {DeliveryState.ACKNOWLEDGED}:
        return FilingStatus.ACKNOWLEDGED
    if done <= {DeliveryState.DELIVERED, DeliveryState.ACKNOWLEDGED}:
        return FilingStatus.DELIVERED
    if DeliveryState.DEFERRED in s:
        return FilingStatus.DEFERRED
    if DeliveryState.WAITING_RETRY in s:
        return FilingStatus.RETRYING
    if s == {DeliveryState.PENDING}:
        return FilingStatus.PENDING
    return FilingStatus.IN_PROGRESS


_FROZEN = ConfigDict(frozen=True, extra="forbid")


def _iso_string_only(value: Any) -> Any:
    """Times arrive as ISO 8601 strings; a bare number is not silently a Unix time."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("expected an ISO 8601 date-time string with an offset")
    return value


JSON_CONTENT_TYPE = "application/json"
TEXT_CONTENT_TYPE = "text/plain"

#: how deep ``payload`` and ``metadata`` may nest (objects and arrays); deeper is refused.
#: A request body may nest 64 levels; a batch's array and event object take two of them.
MAX_NESTING = 62
#: C0 controls and DEL: refused in every field that may become a header, a file name or
#: a queue property (CR/LF would split a header; NUL ends a C string)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _nesting(value: Any) -> int:
    """How deep objects and arrays nest in ``value`` (0 for a scalar); past
    ``MAX_NESTING`` it stops counting (any figure above the limit is refused alike)."""
    return _depth(value, 1) if isinstance(value, dict | list) else 0


def _depth(container: dict[str, Any] | list[Any], depth: int) -> int:
    """Depth of the deepest container under ``container`` (itself at ``depth``).

    Recursion bounded by ``MAX_NESTING``; only containers are visited, without building a
    tuple per child (2.5x cheaper than a stack walk on a typical payload, measured).
    """
    deepest = depth
    for child in container.values() if isinstance(container, dict) else container:
        if isinstance(child, dict | list):
            if depth >= MAX_NESTING:
                return depth + 1
            found = _depth(child, depth + 1)
            if found > deepest:
                deepest = found
                if found > MAX_NESTING:
                    return found
    return deepest


def _control_in_keys(value: Any) -> str | None:
    """The first object key (at any depth) holding a control character, if any."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if _CONTROL.search(key):
                    return str(key)  # JSON object keys are str
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
    return None


class FilingEvent(BaseModel):
    """A filing event as an internal service posts it to ``POST /v1/filings``."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="FilingEvent")

    filing_type: FilingType = Field(description="The ACE activity, e.g. `isf`, `manifest.ocean`.")
    environment: Environment = Field(description="`cert` or `production`.")
    reference: str = Field(
        min_length=1,
        max_length=128,
        description="Business reference: entry number, ISF transaction, bill of lading…",
    )
    filer_code: str = Field(
        min_length=1,
        max_length=35,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9-]*$",
        description="The filer's code (e.g. an ABI filer code).",
    )
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Same key + same body returns the first filing; may also come as a header.",
    )
    ordering_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Filings with the same key go out one at a time, in order. "
        "Defaults to `reference`.",
    )
    due_by: Annotated[AwareDatetime, BeforeValidator(_iso_string_only)] | None = Field(
        default=None, description="When the filing must reach CBP (ISO 8601 with offset)."
    )
    payload: dict[str, Any] | Annotated[str, Field(min_length=1)] = Field(
        description="A JSON object, or text (a ready X12 or CATAIR document) with `content_type` "
        "(`text/plain` when not given)."
    )
    content_type: str | None = Field(
        default=None,
        max_length=100,
        pattern=r"^[\w.+-]+/[\w.+-]+(;.*)?$",
        description="Media type of a text payload, e.g. `application/edi-x12`. "
        "JSON payloads are `application/json`.",
    )
    callback_url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://[^\s]+$",
        description="Where the gateway POSTs status changes of this filing.",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Free key/values, stored and returned as given."
    )

    @field_validator("payload")
    @classmethod
    def _payload_not_empty(cls, value: dict[str, Any] | str) -> dict[str, Any] | str:
        if isinstance(value, str) and not value.strip():
            raise ValueError("a text payload must not be empty")
        if isinstance(value, dict) and _nesting(value) > MAX_NESTING:
            raise ValueError(f"nests deeper than {MAX_NESTING} levels")
        return value

    @field_validator("reference", "idempotency_key", "ordering_key", "content_type")
    @classmethod
    def _no_control_characters(cls, value: str | None) -> str | None:
        if value is not None and _CONTROL.search(value):
            raise ValueError("must not hold control characters (CR, LF, NUL, …)")
        return value

    @field_validator("callback_url")
    @classmethod
    def _plain_url(cls, value: str | None) -> str | None:
        if value is not None and (_CONTROL.search(value) or "\\" in value):
            raise ValueError("must not hold a backslash or control characters")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_fits_headers(cls, value: dict[str, Any]) -> dict[str, Any]:
        if _nesting(value) > MAX_NESTING:
            raise ValueError(f"nests deeper than {MAX_NESTING} levels")
        key = _control_in_keys(value)
        if key is not None:
            raise ValueError(f"key {key!r} holds a control character")
        for key, item in value.items():
            if isinstance(item, str) and _CONTROL.search(item):
                raise ValueError(f"{key}: a top-level value must not hold control characters")
        return value

    @model_validator(mode="after")
    def _content_type_matches_payload(self) -> FilingEvent:
        if isinstance(self.payload, str):
            if self.content_type is not None and self.content_type.split(";")[0].strip().endswith(
                "json"
            ):
                raise ValueError("content_type says JSON but the payload is text")
        elif self.content_type not in (None, JSON_CONTENT_TYPE):
            raise ValueError("a JSON object payload must have content_type application/json")
        return self

    def body_hash(self) -> str:
        """SHA-256 over the canonical JSON of the event, idempotency key left out."""
        data = self.model_dump(mode="json", exclude={"idempotency_key"})
        return hashlib.sha256(json_bytes(data, sort_keys=True)).hexdigest()


class Filing(BaseModel):
    """A filing event after normalization: what the store keeps."""

    model_config = _FROZEN

    id: str = Field(description="Gateway id, sortable by acceptance time (`fil_…`).")
    filing_type: FilingType
    environment: Environment
    reference: str
    filer_code: str
    idempotency_key: str | None = None
    ordering_key: str = Field(description="The resolved ordering key.")
    due_by: AwareDatetime | None = None
    payload: dict[str, Any] | str
    content_type: str = Field(description="Media type of the payload.")
    callback_url: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    body_hash: str = Field(description="SHA-256 of the canonical event body.")
    source: str = Field(default="api", description="Who submitted it (token name, queue, file).")
    source_event_id: str | None = Field(
        default=None, description="The original event's id (CloudEvent id, message id, file)."
    )
    received_at: AwareDatetime = Field(description="When the gateway accepted it.")


class Delivery(BaseModel):
    """One filing to one adapter."""

    model_config = _FROZEN

    id: str = Field(description="Delivery id (`dlv_…`); sent as the Idempotency-Key.")
    filing_id: str
    adapter: str
    state: DeliveryState
    attempts: int = Field(description="Attempts spent (outages spend none).")
    next_attempt_at: AwareDatetime | None = Field(
        default=None, description="When a waiting or deferred delivery goes next."
    )
    last_error: str | None = None
    receipt: dict[str, Any] | None = Field(
        default=None, description="What the adapter returned on success."
    )
    created_at: AwareDatetime
    updated_at: AwareDatetime
    delivered_at: AwareDatetime | None = None
    ack_due_at: AwareDatetime | None = Field(
        default=None, description="When an acknowledgement is expected by (route `ack_within`)."
    )
    ack_overdue: bool = Field(
        default=False, description="Delivered, and no acknowledgement came by `ack_due_at`."
    )
    ack: dict[str, Any] | None = Field(
        default=None, description="The last acknowledgement applied: outcome, codes, message."
    )
    ack_conflict: bool = Field(
        default=False,
        description="An acknowledgement contradicted the one applied (e.g. a rejection after "
        "an acceptance): stored, changed nothing, and waits for a person (resend or close).",
    )


class FilingView(BaseModel):
    """A filing with its derived status and its deliveries, as the API returns it."""

    model_config = _FROZEN

    id: str
    status: FilingStatus
    filing_type: FilingType
    environment: Environment
    reference: str
    filer_code: str
    ordering_key: str
    idempotency_key: str | None = None
    due_by: AwareDatetime | None = None
    at_risk: bool = Field(
        default=False,
        description="Not delivered and `due_by` is near or inside a known outage.",
    )
    source: str
    source_event_id: str | None = None
    received_at: AwareDatetime
    body_hash: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    deliveries: list[Delivery]


class RejectedEvent(BaseModel):
    """An inbound event (queue message, dropped file) that could not become a filing."""

    model_config = _FROZEN

    id: str = Field(description="Gateway id (`rej_…`).")
    source: str = Field(description="The configured source name.")
    origin: str = Field(description="Where it came from: `amqp:QUEUE`, `file:NAME`.")
    event_id: str | None = Field(default=None, description="Message id, CloudEvent id or file.")
    reason: str = Field(description="Why it was rejected, naming the field at fault.")
    details: Any = Field(default=None, description="Structured details (field paths).")
    body: str = Field(description="The event as received (UTF-8, else base64), truncated.")
    content_type: str | None = None
    received_at: AwareDatetime


class OutboundMessage(BaseModel):
    """What the dispatcher hands to ``adapter.send``: one attempt of one delivery."""

    model_config = _FROZEN

    delivery_id: str = Field(description="Stable across attempts; use it to deduplicate.")
    filing_id: str
    adapter: str
    attempt: int = Field(description="1 for the first attempt.")
    filing_type: FilingType
    environment: Environment
    reference: str
    filer_code: str
    content_type: str
    body: bytes = Field(description="The encoded document to transmit.")
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        """The key a receiver can deduplicate on: the delivery id."""
        return self.delivery_id


class Receipt(BaseModel):
    """What an adapter returns when the receiver took the message."""

    model_config = _FROZEN

    transport_id: str | None = Field(
        default=None, description="The receiver's id for the message (MQ message id, …)."
    )
    status: str | None = Field(default=None, description="Short outcome text, e.g. `202`.")
    detail: dict[str, Any] = Field(default_factory=dict, description="Anything else worth keeping.")


class Health(BaseModel):
    """An adapter's answer to ``check()``."""

    model_config = _FROZEN

    ok: bool
    detail: str = ""


class Page(BaseModel):
    """One page of a listing, with the cursor of the next page."""

    model_config = _FROZEN

    items: list[FilingView]
    next_cursor: str | None = None


class AckOutcome(StrEnum):
    """What the receiver said about a submission."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    WARNING = "warning"


class Ack(BaseModel):
    """An acknowledgement (or an unsolicited status message) from the receiver.

    Correlated by the first of: ``delivery_id``; an X12 ``group_control`` /
    ``interchange_control``; ``filing_type`` + ``reference``.
    """

    model_config = _FROZEN

    delivery_id: str | None = Field(default=None, max_length=64, description="`dlv_…` it answers.")
    filing_type: FilingType | None = Field(default=None, description="With `reference`.")
    reference: str | None = Field(default=None, min_length=1, max_length=128)
    interchange_control: int | None = Field(default=None, ge=1, le=999_999_999)
    group_control: int | None = Field(default=None, ge=1, le=999_999_999)
    set_control: str | None = Field(default=None, max_length=9)
    x12_sender: str | None = Field(
        default=None, max_length=20, description="Our side of the X12 pair, `ZZ:MAEU`."
    )
    x12_receiver: str | None = Field(
        default=None, max_length=20, description="Their side of the X12 pair, `ZZ:CBPACE`."
    )
    usage: Literal["T", "P"] | None = Field(default=None, description="ISA15 of the interchange.")
    outcome: AckOutcome | None = Field(
        default=None, description="Required, except for an unsolicited status message."
    )
    codes: list[str] = Field(default_factory=list, max_length=100)
    message: str = Field(default="", max_length=4000)
    unsolicited: bool = Field(
        default=False,
        description="A status message keyed by business reference (cargo release, 350, ISF "
        "advisory): kept as history, never changes a final state.",
    )
    kind: str = Field(default="json", description="`json`, `TA1`, `997` or `999`.")
    raw: str | None = Field(default=None, description="The document as received.")
    source: str = Field(default="api", description="Who handed it in (token, adapter).")
    received_at: AwareDatetime | None = Field(default=None, description="Set by the gateway.")

    @model_validator(mode="after")
    def _correlatable(self) -> Ack:
        if self.outcome is None and not self.unsolicited:
            raise ValueError("outcome is required (accepted, rejected or warning)")
        has_ref = self.filing_type is not None and self.reference is not None
        if (self.filing_type is None) != (self.reference is None):
            raise ValueError("filing_type and reference go together")
        if self.unsolicited and not has_ref:
            raise ValueError("an unsolicited message needs filing_type and reference")
        if not (
            has_ref
            or self.delivery_id
            or self.interchange_control is not None
            or self.group_control is not None
        ):
            raise ValueError("give delivery_id, filing_type + reference, or an X12 control number")
        return self


class InboundDocument(BaseModel):
    """A document an adapter's ``receive()`` picked up (an ack file, a reply message)."""

    model_config = _FROZEN

    name: str = Field(description="Where it came from (file name, message id).")
    content_type: str = Field(description="`application/json` or `application/edi-x12`.")
    body: bytes = Field(description="The raw document, as the receiver sent it.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Transport headers (AMQP message headers), as text."
    )


class AckRecord(BaseModel):
    """A stored acknowledgement and what it did."""

    model_config = _FROZEN

    id: str = Field(description="`ack_…`")
    matched: bool
    duplicate: bool = Field(default=False, description="The same ack was already stored.")
    effect: str = Field(
        description="acknowledged | rejected | resend_scheduled | history | unmatched"
    )
    delivery_id: str | None = None
    filing_id: str | None = None
    ack: Ack


class CallbackView(BaseModel):
    """One status event queued for a filing's `callback_url`, and how its delivery went."""

    model_config = _FROZEN

    id: str = Field(description="`evt_…`; sent as `webhook-id`, stable across retries.")
    filing_id: str
    url: str
    event: str = Field(description="`filing.delivered`, `filing.acknowledged`, …")
    state: str = Field(description="pending | in_flight | waiting_retry | delivered | dead")
    attempts: int
    next_attempt_at: AwareDatetime | None = None
    last_error: str | None = None
    created_at: AwareDatetime
    delivered_at: AwareDatetime | None = None


AuthScope = Literal["submit", "read", "operate", "admin"]


def utc_iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat().replace("+00:00", "Z")
