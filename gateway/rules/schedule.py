"""The windows of all the calendars that apply to an adapter, *normalised*: their
occurrences cut into non-overlapping pieces, where windows overlap the stricter policy
(``hold``) wins, and touching pieces of the same policy merge; and the questions asked
of them (the window at t, the next open time, the next n windows). Every function takes
``now``; nothing here reads a clock. Pure.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from gateway.rules.calendars import CHUNK, SEARCH_LIMIT, STRICTNESS, Calendar, Policy, Window


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
        policy = max((w.policy for w in covering), key=STRICTNESS.__getitem__)
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
            nxt = [x for x in self.windows(end, end + CHUNK) if x.start <= end < x.end]
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
            for w in self.windows(start, start + CHUNK):
                whole = self._whole(w)
                if out and whole.start < out[-1].end:
                    continue  # already listed from the previous chunk
                out.append(whole)
                if len(out) == n:
                    break
            start += CHUNK
        return out


def window_at(calendars: Calendar | Sequence[Calendar], now: datetime) -> Window | None:
    return Schedule(calendars).window_at(now)


def next_open(calendars: Calendar | Sequence[Calendar], now: datetime) -> datetime:
    return Schedule(calendars).next_open(now)


def upcoming(calendars: Calendar | Sequence[Calendar], n: int, now: datetime) -> list[Window]:
    return Schedule(calendars).upcoming(n, now)
