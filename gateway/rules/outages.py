"""Outage calendars, announced outages and the "may this adapter send at t?" gate. Pure.

A *calendar* is a set of weekly windows in one IANA time zone; each window has a
policy: ``hold`` (send nothing) or ``probe`` (try at a low rate; failures spend no
attempt). A window is written by the day it *starts* on and its local start and end
times; an end at or before the start is on the next day (Sat 22:00 → Sun 04:00), so
windows may cross midnight and the week boundary.

**The DST rule** (PEP 495, ``fold=0``): a window edge at a local time that does not
exist (02:30 on 2026-03-08 in America/New_York) is read with the offset in force
*before* the transition, which lands it one gap later (03:30 EDT = 07:30 UTC); an edge
at a local time that happens twice (01:30 on 2026-11-01) is its *first* occurrence
(01:30 EDT = 05:30 UTC). A window whose edges collapse onto one instant is dropped.

*Normalised* windows are the occurrences of all the calendars that apply, cut into
non-overlapping pieces: where windows overlap the stricter policy (``hold``) wins, and
touching pieces of the same policy merge. Every function takes ``now``; nothing here
reads a clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from gateway import config, models

#: how far the searches for the next open time or the next windows look
SEARCH_LIMIT = timedelta(days=400)
_CHUNK = timedelta(days=8)


class Policy(StrEnum):
    """What a window means for sending."""

    HOLD = "hold"
    PROBE = "probe"


_STRICTNESS = {Policy.PROBE: 1, Policy.HOLD: 2}


@dataclass(frozen=True, slots=True)
class Window:
    """One occurrence of a window, in UTC: ``start`` ≤ t < ``end``."""

    start: datetime
    end: datetime
    policy: Policy
    calendar: str

    def contains(self, when: datetime) -> bool:
        return self.start <= when < self.end


@dataclass(frozen=True, slots=True)
class Rule:
    """A weekly window: starts on ``weekdays`` (0 = Monday) at ``start``, ends at ``end``."""

    weekdays: frozenset[int]
    start: time
    end: time
    policy: Policy


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall time, by the module's DST rule (``fold=0``)."""
    return datetime.combine(day, at, tzinfo=zone).replace(fold=0).astimezone(UTC)


class Calendar:
    """A named set of weekly windows in one time zone."""

    def __init__(self, name: str, zone: ZoneInfo, rules: Sequence[Rule]) -> None:
        self.name = name
        self.zone = zone
        self.rules = tuple(rules)

    @classmethod
    def from_config(cls, name: str, section: config.CalendarConfig) -> Calendar:
        rules = [
            Rule(
                weekdays=frozenset(config.DAYS.index(d) for d in w.days),
                start=time.fromisoformat(w.start),
                end=time.fromisoformat(w.end),
                policy=Policy(w.policy),
            )
            for w in section.windows
        ]
        return cls(name, ZoneInfo(section.timezone), rules)

    def occurrences(self, start: datetime, end: datetime) -> list[Window]:
        """Raw occurrences overlapping [start, end), possibly overlapping each other."""
        first = start.astimezone(self.zone).date() - timedelta(days=2)
        last = end.astimezone(self.zone).date() + timedelta(days=1)
        out: list[Window] = []
        day = first
        while day <= last:
            for rule in self.rules:
                if day.weekday() not in rule.weekdays:
                    continue
                end_day = day if rule.end > rule.start else day + timedelta(days=1)
                w_start = local_instant(day, rule.start, self.zone)
                w_end = local_instant(end_day, rule.end, self.zone)
                if w_start < w_end and w_end > start and w_start < end:
                    out.append(Window(w_start, w_end, rule.policy, self.name))
            day += timedelta(days=1)
        return out


def calendars_from_config(cfg: config.Config) -> dict[str, Calendar]:
    return {name: Calendar.from_config(name, c) for name, c in cfg.calendars.items()}


def normalize(windows: Iterable[Window]) -> list[Window]:
    """Non-overlapping, sorted pieces: overlaps take the stricter policy; equal ones merge."""
    items = list(windows)
    if not items:
        return []
    points = sorted({w.start for w in items} | {w.end for w in items})
    pieces: list[Window] = []
    for a, b in itertools.pairwise(points):
        covering = [w for w in items if w.start <= a and w.end >= b]
        if not covering:
            continue
        policy = max((w.policy for w in covering), key=_STRICTNESS.__getitem__)
        names = "+".join(sorted({w.calendar for w in covering if w.policy is policy}))
        prev = pieces[-1] if pieces else None
        if prev is not None and prev.end == a and prev.policy is policy:
            merged = "+".join(sorted(set(prev.calendar.split("+")) | set(names.split("+"))))
            pieces[-1] = Window(prev.start, b, policy, merged)
        else:
            pieces.append(Window(a, b, policy, names))
    return pieces


class Schedule:
    """The calendars that apply to one adapter, queried as one normalised timeline."""

    def __init__(self, calendars: Calendar | Sequence[Calendar]) -> None:
        self.calendars = (calendars,) if isinstance(calendars, Calendar) else tuple(calendars)

    def windows(self, start: datetime, end: datetime) -> list[Window]:
        """Normalised windows overlapping [start, end)."""
        raw = [w for c in self.calendars for w in c.occurrences(start, end)]
        return [w for w in normalize(raw) if w.end > start and w.start < end]

    def window_at(self, now: datetime) -> Window | None:
        """The normalised window ``now`` lies in (whole, not clipped), or None."""
        for w in self.windows(now - timedelta(days=1), now + timedelta(days=2)):
            if w.contains(now):
                return self._whole(w)
        return None

    def _whole(self, w: Window) -> Window:
        # a window merged across the search edge: extend until its end is really its end
        end = w.end
        while True:
            nxt = [x for x in self.windows(end, end + _CHUNK) if x.start <= end < x.end]
            if not nxt or nxt[0].policy is not w.policy or end - w.end > SEARCH_LIMIT:
                return Window(w.start, end, w.policy, w.calendar)
            end = nxt[0].end

    def next_open(self, now: datetime) -> datetime:
        """The earliest instant ≥ ``now`` that lies in no window of any policy."""
        t = now
        while (w := self.window_at(t)) is not None:
            t = w.end
            if t - now > SEARCH_LIMIT:
                raise ValueError("the calendars leave no open time within 400 days")
        return t

    def hold_until(self, now: datetime) -> datetime | None:
        """When ``now`` is in a ``hold`` window, the earliest instant no hold covers."""
        t, held = now, False
        while (w := self.window_at(t)) is not None and w.policy is Policy.HOLD:
            t, held = w.end, True
            if t - now > SEARCH_LIMIT:
                raise ValueError("the calendars hold for more than 400 days")
        return t if held else None

    def upcoming(self, n: int, now: datetime) -> list[Window]:
        """The next ``n`` normalised windows that end after ``now`` (a current one first)."""
        out: list[Window] = []
        start = now
        while len(out) < n and start - now < SEARCH_LIMIT:
            for w in self.windows(start, start + _CHUNK):
                whole = self._whole(w)
                if out and whole.start < out[-1].end:
                    continue  # already listed from the previous chunk
                out.append(whole)
                if len(out) == n:
                    break
            start += _CHUNK
        return out


def window_at(calendars: Calendar | Sequence[Calendar], now: datetime) -> Window | None:
    return Schedule(calendars).window_at(now)


def next_open(calendars: Calendar | Sequence[Calendar], now: datetime) -> datetime:
    return Schedule(calendars).next_open(now)


def upcoming(calendars: Calendar | Sequence[Calendar], n: int, now: datetime) -> list[Window]:
    return Schedule(calendars).upcoming(n, now)


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
