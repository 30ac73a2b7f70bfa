"""Announced outages and the "may this adapter send at t?" gate. Pure.

The gate combines an adapter's calendar windows (``gateway.rules.calendars`` and
``gateway.rules.schedule``, whose names are re-exported here for callers), the outages
operators announce and the circuit breaker. Every function takes ``now``; nothing here
reads a clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from gateway import config, models
from gateway.rules.calendars import (
    SEARCH_LIMIT,
    Calendar,
    Policy,
    Rule,
    Window,
    calendars_from_config,
    local_instant,
)
from gateway.rules.schedule import Schedule, next_open, normalize, upcoming, window_at

__all__ = [
    "SEARCH_LIMIT",
    "Calendar",
    "Gate",
    "GateState",
    "Outage",
    "OutageRequest",
    "Pause",
    "PauseRequest",
    "Policy",
    "Rule",
    "Schedule",
    "TypeAction",
    "TypeRules",
    "TypeWindow",
    "Window",
    "calendars_from_config",
    "decide",
    "local_instant",
    "next_open",
    "normalize",
    "upcoming",
    "window_at",
]


# --- announced outages ------------------------------------------------------------------


class OutageRequest(BaseModel):
    """What an operator posts to ``POST /v1/outages``: an adapter or an environment."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="OutageRequest")

    adapter: str | None = Field(default=None, description="The adapter that is down.")
    environment: models.Environment | None = Field(
        default=None, description="Or: the whole ACE environment (`cert`, `production`)."
    )
    starts_at: AwareDatetime | None = Field(default=None, description="Default: now.")
    ends_at: AwareDatetime | None = Field(default=None, description="Absent: until removed.")
    reason: str = Field(default="", max_length=1000, description="Why, in a few words.")
    reference: str | None = Field(
        default=None, max_length=200, description="E.g. the CSMS message number."
    )

    @field_validator("starts_at", "ends_at", mode="before")
    @classmethod
    def _iso_text(cls, value: object) -> object:
        return iso_text(value)


def iso_text(value: object) -> object:
    """An ISO 8601 string (as documented): a number is not silently a Unix time."""
    if value is None or isinstance(value, datetime):
        return value
    try:
        datetime.fromisoformat(str(value).replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError("expected an ISO 8601 date-time string with an offset") from None
    if not isinstance(value, str):
        raise ValueError("expected an ISO 8601 date-time string with an offset")
    return value


class Outage(BaseModel):
    """An announced outage as stored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="`out_…`")
    adapter: str | None = None
    environment: models.Environment | None = None
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = Field(default=None, description="None: until removed.")
    reason: str = ""
    reference: str | None = None
    created_at: AwareDatetime
    created_by: str
    removed_at: AwareDatetime | None = None

    def active_at(self, now: datetime) -> bool:
        return (
            self.removed_at is None
            and self.starts_at <= now
            and (self.ends_at is None or now < self.ends_at)
        )


# --- the gate ---------------------------------------------------------------------------


class GateState(StrEnum):
    """May an adapter send now?"""

    OPEN = "open"
    PROBE = "probe"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Gate:
    """The answer for one adapter at one instant."""

    state: GateState
    #: when CLOSED: the earliest time it may send again (never None when closed)
    until: datetime | None = None
    reason: str = ""
    #: environments held by an announced outage: environment → (until, reason)
    environments: tuple[tuple[str, datetime, str], ...] = ()


def decide(
    *,
    adapter: str,
    schedule: Schedule,
    outages: Sequence[Outage],
    breaker_until: datetime | None,
    now: datetime,
    recheck: timedelta,
) -> Gate:
    """Combine the calendar, announced outages and the breaker into one ``Gate``.

    ``breaker_until`` is the end of an open breaker's cool-down (None when it is not
    open). An open-ended outage closes the gate until ``now + recheck``.
    """
    reasons: list[str] = []
    t = now
    for _ in range(50):  # every closer that is active at t pushes t to its end
        moved = False
        held = schedule.hold_until(t)
        if held is not None and held > t:
            reasons.append(f"hold window until {models.utc_iso(held)}")
            t, moved = held, True
        for o in outages:
            if o.adapter == adapter and o.active_at(t):
                end = o.ends_at or t + recheck
                reasons.append(f"announced outage {o.id}" + (f" ({o.reason})" if o.reason else ""))
                t, moved = max(t, end), True
        if breaker_until is not None and breaker_until > t:
            reasons.append(f"circuit breaker open until {models.utc_iso(breaker_until)}")
            t, moved = breaker_until, True
        if not moved:
            break
    envs = tuple(
        (o.environment.value, o.ends_at or now + recheck, f"announced outage {o.id}")
        for o in outages
        if o.adapter is None and o.environment is not None and o.active_at(now)
    )
    if t > now:
        return Gate(
            GateState.CLOSED, until=t, reason="; ".join(dict.fromkeys(reasons)), environments=envs
        )
    window = schedule.window_at(now)
    if window is not None and window.policy is Policy.PROBE:
        return Gate(
            GateState.PROBE,
            until=window.end,
            reason=f"probe window ({window.calendar})",
            environments=envs,
        )
    return Gate(GateState.OPEN, environments=envs)


# --- pauses -----------------------------------------------------------------------------


class PauseRequest(BaseModel):
    """What an operator posts to ``POST /v1/pauses``: an adapter, a filing type, or both."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="PauseRequest")

    adapter: str | None = Field(default=None, description="Pause this adapter's deliveries.")
    filing_type: models.FilingType | None = Field(
        default=None, description="Pause this filing type (on every adapter, or on `adapter`)."
    )
    reason: str = Field(min_length=1, max_length=1000, description="Why, in a few words.")
    ends_at: AwareDatetime | None = Field(
        default=None, description="Resume on its own at this time; absent: until resumed."
    )

    @field_validator("ends_at", mode="before")
    @classmethod
    def _iso_text(cls, value: object) -> object:
        return iso_text(value)


class Pause(BaseModel):
    """A pause as stored: while active, the deliveries it names are not claimed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="`pau_…`")
    adapter: str | None = None
    filing_type: models.FilingType | None = None
    reason: str
    ends_at: AwareDatetime | None = Field(default=None, description="None: until resumed.")
    created_at: AwareDatetime
    created_by: str
    resumed_at: AwareDatetime | None = None
    resumed_by: str | None = None

    def active_at(self, now: datetime) -> bool:
        return self.resumed_at is None and (self.ends_at is None or now < self.ends_at)

    def covers(self, adapter: str) -> bool:
        return self.adapter is None or self.adapter == adapter

    def audit_details(self) -> dict[str, Any]:
        """Details of the ``control.paused`` / ``control.resumed`` audit rows."""
        return {
            "pause_id": self.id,
            "adapter": self.adapter,
            "filing_type": None if self.filing_type is None else self.filing_type.value,
            "reason": self.reason,
            "ends_at": models.utc_iso(self.ends_at),
        }

    @property
    def target(self) -> str:
        """``adapter ace``, ``type inbond`` or ``adapter ace, type inbond``."""
        parts = [f"adapter {self.adapter}"] if self.adapter else []
        parts += [f"type {self.filing_type.value}"] if self.filing_type else []
        return ", ".join(parts)


# --- filing types inside a window (issue 21) --------------------------------------------


class TypeAction(StrEnum):
    """What a calendar window does to one filing type."""

    HOLD = "hold"
    PROBE = "probe"
    REFUSE_INTAKE = "refuse_intake"


@dataclass(frozen=True, slots=True)
class TypeWindow:
    """A window in force that names what it does to one filing type."""

    calendar: str
    start: datetime
    end: datetime
    action: TypeAction


class TypeRules:
    """The per-type actions of every calendar's windows, by adapter (from the config)."""

    def __init__(self, cfg: config.Config) -> None:
        self.by_calendar: dict[str, list[tuple[Calendar, dict[str, TypeAction]]]] = {}
        for name, section in cfg.calendars.items():
            for w in section.windows:
                if w.types:
                    one = Calendar.from_config(name, section.model_copy(update={"windows": [w]}))
                    actions = {t.value: TypeAction(a) for t, a in w.types.items()}
                    self.by_calendar.setdefault(name, []).append((one, actions))
        self.calendars = {n: list(s.calendars) for n, s in cfg.adapters.items()}
        self.named = {t for rules in self.by_calendar.values() for _, a in rules for t in a}

    def in_force(self, adapter: str, now: datetime) -> dict[str, TypeWindow]:
        """Filing type → the window acting on it now; the stricter action wins."""
        out: dict[str, TypeWindow] = {}
        for cal in self.calendars.get(adapter, ()):
            for t, w in self.of_calendar(cal, now).items():
                if t not in out or _RANK[w.action] > _RANK[out[t].action]:
                    out[t] = w
        return out

    def of_calendar(self, calendar: str, now: datetime) -> dict[str, TypeWindow]:
        """Filing type → the window of ``calendar`` acting on it at ``now``."""
        out: dict[str, TypeWindow] = {}
        for one, actions in self.by_calendar.get(calendar, ()):
            for w in one.occurrences(now, now + _INSTANT):
                if not w.contains(now):
                    continue
                for t, action in actions.items():
                    if t not in out or _RANK[action] > _RANK[out[t].action]:
                        out[t] = TypeWindow(calendar, w.start, w.end, action)
        return out

    def held(self, adapter: str, now: datetime) -> dict[str, TypeWindow]:
        """The types a window keeps from being sent now (``hold``, ``refuse_intake``)."""
        return {
            t: w for t, w in self.in_force(adapter, now).items() if w.action is not TypeAction.PROBE
        }

    def refusal(
        self, filing_type: str, adapters: Sequence[str], now: datetime
    ) -> TypeWindow | None:
        """The window that refuses a filing of this type routed to ``adapters`` now."""
        if filing_type not in self.named:  # the common case: no window names the type
            return None
        for adapter in adapters:
            w = self.in_force(adapter, now).get(filing_type)
            if w is not None and w.action is TypeAction.REFUSE_INTAKE:
                return w
        return None


_INSTANT = timedelta(microseconds=1)
_RANK = {TypeAction.PROBE: 0, TypeAction.HOLD: 1, TypeAction.REFUSE_INTAKE: 2}
