"""Outage calendars: weekly windows in one IANA time zone and their occurrences. Pure.

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

``schedule`` puts the windows of several calendars together; ``outages`` adds the
announced outages and the gate. Pure: nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from gateway import config

#: how far the searches for the next open time or the next windows look
SEARCH_LIMIT = timedelta(days=400)
CHUNK = timedelta(days=8)


class Policy(StrEnum):
    """What a window means for sending."""

    HOLD = "hold"
    PROBE = "probe"


STRICTNESS = {Policy.PROBE: 1, Policy.HOLD: 2}


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
