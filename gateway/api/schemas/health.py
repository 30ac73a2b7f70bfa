"""Answers about health: sources, ``/readyz``, ``/livez`` and the monitoring overview."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from gateway import models
from gateway.api.schemas.adapters import BreakerStatus, CalendarSchedule, GateStatus
from gateway.api.schemas.errors import SHAPE
from gateway.rules import outages


class SourceHealth(BaseModel):
    """A running inbound source (queue consumer, watched directory)."""

    model_config = SHAPE

    kind: str
    target: str
    status: Literal["starting", "ok", "degraded", "stopped"]
    detail: str
    accepted: int
    duplicate: int
    rejected: int


class Readiness(BaseModel):
    """``GET /readyz``: 200 ready or degraded, 503 not_ready naming the failing checks."""

    model_config = SHAPE

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
    held: dict[str, dict[str, str]] | None = Field(
        default=None,
        description="Adapters with paused or window-held filing types: type (`*`: all) → why.",
    )
    store: str = Field(description="The store this gateway uses, its password masked.")


class Liveness(BaseModel):
    """``GET /healthz``, ``/livez``."""

    model_config = SHAPE

    status: Literal["ok"]


class AdapterOverview(BaseModel):
    """One adapter in the overview."""

    model_config = SHAPE

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


class FilerQueue(BaseModel):
    """One filer code's filings not yet settled (the queue by filer, issue 22)."""

    model_config = SHAPE

    filer_code: str
    counts: dict[str, int] = Field(description="Unsettled filings by status.")
    waiting: int = Field(description="Their sum.")


class Overview(BaseModel):
    """``GET /v1/overview``: queue, adapters, calendars and outages at a glance."""

    model_config = SHAPE

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
    filers: list[FilerQueue] = Field(
        description="The queue by filer code, the most waiting first (at most 100; "
        "`?filer=` one code)."
    )
