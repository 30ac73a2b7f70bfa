"""The JSON bodies the HTTP API answers with, one pydantic model per shape.

``/openapi.json`` is generated from these (and from ``gateway.models``), so a client
generated from the spec gets typed objects; ``tests/test_openapi_truth.py`` checks real
responses of a running gateway against the spec.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from gateway import models
from gateway.rules import breaker, outages

_SHAPE = ConfigDict(frozen=True, extra="forbid")


class ErrorBody(BaseModel):
    """What went wrong: a stable code, a sentence, and the fields at fault."""

    model_config = _SHAPE

    code: str = Field(description="Stable machine code, e.g. `invalid_input`.")
    message: str = Field(description="One sentence for a person.")
    details: Any = Field(default=None, description="Field paths and reasons, when known.")


class Error(BaseModel):
    """Every 4xx/5xx answer: ``{"error": {"code", "message", "details"}}``."""

    model_config = _SHAPE

    error: ErrorBody


# --- filings ----------------------------------------------------------------------------


class Submitted(BaseModel):
    """A submitted filing: its id, derived status and deliveries."""

    model_config = _SHAPE

    id: str = Field(description="Gateway id (`fil_…`).")
    status: models.FilingStatus
    created: bool = Field(description="False when this repeats an earlier submission.")
    deliveries: list[models.Delivery]


class SubmittedMany(BaseModel):
    """One CloudEvent that its source's normalizer turned into several filings."""

    model_config = _SHAPE

    created: bool = Field(description="True when at least one filing is new.")
    filings: list[Submitted]


class BatchAccepted(Submitted):
    """A batch item that became (or repeated) one filing."""

    http_status: Literal[200, 202] = Field(description="202 new, 200 a duplicate.")


class BatchAcceptedMany(SubmittedMany):
    """A batch item (a CloudEvent) that became several filings."""

    http_status: Literal[200, 202] = Field(description="202 when one is new, else 200.")


class BatchRejected(BaseModel):
    """A batch item refused on its own; the rest of the batch is unaffected."""

    model_config = _SHAPE

    http_status: int = Field(description="The status a single submission would have had.")
    error: ErrorBody


class BatchResult(BaseModel):
    """``POST /v1/filings/batch``: one result per item, in order."""

    model_config = _SHAPE

    accepted: int
    rejected: int
    results: list[BatchAccepted | BatchAcceptedMany | BatchRejected]


class AuditEntry(BaseModel):
    """One row of the hash-chained audit trail."""

    model_config = _SHAPE

    seq: int = Field(description="Position in the trail.")
    at: AwareDatetime
    actor: str = Field(description="Token name, `dispatcher`, a source…")
    filing_id: str | None
    delivery_id: str | None
    event: str = Field(description="`filing.accepted`, `delivery.delivered`, …")
    details: dict[str, Any] = Field(description="What changed (sensitive values redacted).")
    prev_hash: str
    hash: str = Field(description="SHA-256 over this row and `prev_hash`.")


class History(BaseModel):
    """``GET /v1/filings/{id}/history``: a filing's audit rows, oldest first."""

    model_config = _SHAPE

    filing_id: str
    events: list[AuditEntry]


class RejectedPage(BaseModel):
    """A page of inbound events that could not become filings."""

    model_config = _SHAPE

    items: list[models.RejectedEvent]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


# --- adapters, outages, readiness -------------------------------------------------------


class BreakerStatus(BaseModel):
    """An adapter's circuit breaker."""

    model_config = _SHAPE

    state: breaker.BreakerState
    consecutive_failures: int
    open_until: AwareDatetime | None
    cooldown_s: float


class GateStatus(BaseModel):
    """May the adapter send now (calendar window, announced outage)?"""

    model_config = _SHAPE

    state: outages.GateState
    until: AwareDatetime | None = Field(description="When the gate next changes, if known.")
    reason: str | None


class AdapterInfo(BaseModel):
    """One configured adapter: its health, delivery counts and outage state."""

    model_config = _SHAPE

    name: str
    type: str | None = Field(description="Built-in kind, or the external factory.")
    concurrency: int
    codec: str
    health: models.Health | None = Field(description="Its `check()`; null if not running.")
    deliveries: dict[str, int] = Field(description="Deliveries by state.")
    breaker: BreakerStatus | None = None
    gate: GateStatus | None = None
    calendars: list[str] = Field(default_factory=list)
    rate_limit: float | None = None
    burst: int | None = None


class AdapterList(BaseModel):
    """``GET /v1/adapters``."""

    model_config = _SHAPE

    adapters: list[AdapterInfo]


class CalendarWindow(BaseModel):
    """One upcoming window of an outage calendar."""

    model_config = _SHAPE

    start: AwareDatetime = Field(description="UTC.")
    end: AwareDatetime = Field(description="UTC.")
    start_local: AwareDatetime = Field(description="In the calendar's time zone.")
    end_local: AwareDatetime = Field(description="In the calendar's time zone.")
    policy: outages.Policy
    current: bool | None = Field(default=None, description="Overview only: open now.")


class CalendarSchedule(BaseModel):
    """A calendar's next windows and the adapters it applies to."""

    model_config = _SHAPE

    timezone: str
    adapters: list[str]
    windows: list[CalendarWindow]


class OutageList(BaseModel):
    """``GET /v1/outages``: announced outages not yet over (and, asked, calendar windows)."""

    model_config = _SHAPE

    outages: list[outages.Outage]
    calendars: dict[str, CalendarSchedule] | None = Field(
        default=None, description="With `?upcoming=N`: each calendar's next N windows."
    )


class SourceHealth(BaseModel):
    """A running inbound source (queue consumer, watched directory)."""

    model_config = _SHAPE

    kind: str
    target: str
    status: Literal["starting", "ok", "degraded", "stopped"]
    detail: str
    accepted: int
    duplicate: int
    rejected: int


class Readiness(BaseModel):
    """``GET /readyz``: 200 ready or degraded, 503 not_ready naming the failing checks."""

    model_config = _SHAPE

    status: Literal["ready", "degraded", "not_ready"]
    checks: dict[str, str] = Field(
        description="store, migrations, dispatcher, shutdown: `ok` or why not."
    )
    failing: list[str]
    degraded: dict[str, str] = Field(
        description="Adapters in an outage (still accepting and queueing)."
    )
    sources: dict[str, SourceHealth] | None = Field(
        default=None, description="Inbound sources, when any run."
    )
    store: str = Field(description="The store this gateway uses, its password masked.")


class Liveness(BaseModel):
    """``GET /healthz``, ``/livez``."""

    model_config = _SHAPE

    status: Literal["ok"]


class AdapterOverview(BaseModel):
    """One adapter in the overview."""

    model_config = _SHAPE

    name: str
    type: str | None
    counts: dict[str, int] = Field(description="Deliveries by state.")
    waiting: int = Field(description="Pending, in flight, waiting to retry or deferred.")
    oldest_waiting_age_s: float | None
    health: models.Health | None
    breaker: BreakerStatus | None
    gate: GateStatus | None
    rate_limit: float | None
    burst: int | None
    calendars: list[str]


class Overview(BaseModel):
    """``GET /v1/overview``: queue, adapters, calendars and outages at a glance."""

    model_config = _SHAPE

    generated_at: AwareDatetime
    snapshot_at: AwareDatetime = Field(description="When the queue figures were read.")
    totals: dict[str, int] = Field(description="Deliveries by state, all adapters.")
    adapters: list[AdapterOverview]
    at_risk: int = Field(description="Filings whose `due_by` is near or inside an outage.")
    ack_conflicts: int = Field(
        description="Deliveries whose acks conflict (e.g. a rejection after an acceptance)."
    )
    acks: dict[str, int] | None = Field(description="Overdue / unmatched acks, when on.")
    calendars: dict[str, CalendarSchedule]
    outages: list[outages.Outage]


# --- acknowledgements and callbacks -----------------------------------------------------


class AckReceipt(BaseModel):
    """``POST /v1/acks``: every ack stored from the document and what it did."""

    model_config = _SHAPE

    acks: list[models.AckRecord] = Field(description="Without `ack.raw`.")
    matched: int
    unmatched: int
    duplicates: int


class AckList(BaseModel):
    """``GET /v1/acks``: acks, newest first."""

    model_config = _SHAPE

    items: list[models.AckRecord]


class FilingAcks(BaseModel):
    """``GET /v1/filings/{id}/acks``: one filing's acks, newest first."""

    model_config = _SHAPE

    filing_id: str
    items: list[models.AckRecord]


class Resent(BaseModel):
    """``POST /v1/filings/{id}/resend``: the deliveries sent again, and the filing after."""

    model_config = _SHAPE

    resent: list[str] = Field(description="Delivery ids.")
    filing: models.FilingView


class AckClosed(BaseModel):
    """``POST /v1/filings/{id}/close-ack``: deliveries no longer waiting for an ack."""

    model_config = _SHAPE

    closed: list[str] = Field(description="Delivery ids.")
    filing: models.FilingView


class CallbackList(BaseModel):
    """``GET /v1/callbacks``: status callbacks, newest first."""

    model_config = _SHAPE

    items: list[models.CallbackView]


#: every response model, each generated into ``components/schemas`` under its class name
RESPONSES: tuple[type[BaseModel], ...] = (
    Error,
    Submitted,
    SubmittedMany,
    BatchResult,
    models.FilingView,
    models.Page,
    History,
    RejectedPage,
    AdapterList,
    OutageList,
    Readiness,
    Liveness,
    Overview,
    AckReceipt,
    AckList,
    FilingAcks,
    Resent,
    AckClosed,
    CallbackList,
)
