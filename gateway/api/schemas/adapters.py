"""Answers about adapters and outages: breaker and gate state, adapter list, calendar
windows and announced outages."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, Field

from gateway import models
from gateway.api.schemas.errors import SHAPE
from gateway.rules import breaker, outages


class BreakerStatus(BaseModel):
    """An adapter's circuit breaker."""

    model_config = SHAPE

    state: breaker.BreakerState
    consecutive_failures: int
    open_until: AwareDatetime | None
    cooldown_s: float


class GateStatus(BaseModel):
    """May the adapter send now (calendar window, announced outage)?"""

    model_config = SHAPE

    state: outages.GateState
    until: AwareDatetime | None = Field(description="When the gate next changes, if known.")
    reason: str | None


class AdapterInfo(BaseModel):
    """One configured adapter: its health, delivery counts and outage state."""

    model_config = SHAPE

    name: str
    type: str | None = Field(description="Built-in kind, or the external factory.")
    concurrency: int
    codec: str
    health: models.Health | None = Field(description="Its `check()`; null if not running.")
    deliveries: dict[str, int] = Field(description="Deliveries by state.")
    breaker: BreakerStatus | None = None
    gate: GateStatus | None = None
    paused: list[outages.Pause] = Field(
        default_factory=list, description="Pauses in force on this adapter (issue 21)."
    )
    held_types: dict[str, str] = Field(
        default_factory=dict,
        description="Filing types not sent now (`*`: all), each with why: a pause or a window.",
    )
    calendars: list[str] = Field(default_factory=list)
    rate_limit: float | None = None
    burst: int | None = None


class AdapterList(BaseModel):
    """``GET /v1/adapters``."""

    model_config = SHAPE

    adapters: list[AdapterInfo]


class CalendarWindow(BaseModel):
    """One upcoming window of an outage calendar."""

    model_config = SHAPE

    start: AwareDatetime = Field(description="UTC.")
    end: AwareDatetime = Field(description="UTC.")
    start_local: AwareDatetime = Field(description="In the calendar's time zone.")
    end_local: AwareDatetime = Field(description="In the calendar's time zone.")
    policy: outages.Policy
    types: dict[str, outages.TypeAction] | None = Field(
        default=None, description="What the window does per filing type, when it says."
    )
    current: bool | None = Field(default=None, description="Overview only: open now.")


class CalendarSchedule(BaseModel):
    """A calendar's next windows and the adapters it applies to."""

    model_config = SHAPE

    timezone: str
    adapters: list[str]
    windows: list[CalendarWindow]


class OutageList(BaseModel):
    """``GET /v1/outages``: announced outages not yet over (and, asked, calendar windows)."""

    model_config = SHAPE

    outages: list[outages.Outage]
    calendars: dict[str, CalendarSchedule] | None = Field(
        default=None, description="With `?upcoming=N`: each calendar's next N windows."
    )
