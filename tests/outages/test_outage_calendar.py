"""The outage calendar: CBP's published ACE windows, DST, and the normalised timeline."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import config, errors
from gateway.rules import outages

NY = ZoneInfo("America/New_York")
CFG = config.parse_config({})
CALS = outages.calendars_from_config(CFG)
PROD = outages.Schedule(CALS["ace-production"])
CERT = outages.Schedule(CALS["ace-cert"])


def ny(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=NY).replace(fold=fold).astimezone(UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def spans(windows: list[outages.Window]) -> list[tuple[datetime, datetime, str]]:
    return [(w.start, w.end, w.policy.value) for w in windows]


def test_production_calendar_matches_cbp_published_windows_in_a_winter_week():
    """Jan 2026: Tue and Thu 05:00-07:00 EST (probe), Sat 22:00-Sun 04:00 EST (hold)."""
    got = PROD.windows(ny(2026, 1, 5), ny(2026, 1, 12))
    assert spans(got) == [
        (utc(2026, 1, 6, 10), utc(2026, 1, 6, 12), "probe"),
        (utc(2026, 1, 8, 10), utc(2026, 1, 8, 12), "probe"),
        (utc(2026, 1, 11, 3), utc(2026, 1, 11, 9), "hold"),
    ]


def test_production_saturday_window_spans_into_sunday_across_the_week_boundary():
    """Sat 22:00 → Sun 04:00 is one hold window, found from either side of midnight."""
    inside_saturday = ny(2026, 1, 10, 23, 30)
    inside_sunday = ny(2026, 1, 11, 3, 59)
    for t in (inside_saturday, inside_sunday):
        w = PROD.window_at(t)
        assert w is not None
        assert w.policy is outages.Policy.HOLD
        assert (w.start, w.end) == (ny(2026, 1, 10, 22), ny(2026, 1, 11, 4))
    assert PROD.window_at(ny(2026, 1, 11, 4)) is None
    assert PROD.window_at(ny(2026, 1, 10, 21, 59)) is None


def test_march_dst_week_windows_follow_eastern_daylight_time():
    """Week of 2026-03-08: the Sat→Sun window is 5 h of UTC; Tue/Thu move to 09:00 UTC."""
    got = PROD.windows(ny(2026, 3, 2), ny(2026, 3, 13))
    assert spans(got) == [
        (utc(2026, 3, 3, 10), utc(2026, 3, 3, 12), "probe"),  # EST, -5
        (utc(2026, 3, 5, 10), utc(2026, 3, 5, 12), "probe"),
        (utc(2026, 3, 8, 3), utc(2026, 3, 8, 8), "hold"),  # 22:00 EST → 04:00 EDT
        (utc(2026, 3, 10, 9), utc(2026, 3, 10, 11), "probe"),  # EDT, -4
        (utc(2026, 3, 12, 9), utc(2026, 3, 12, 11), "probe"),
    ]


def test_november_dst_week_windows_follow_eastern_standard_time():
    """Week of 2026-11-01: the Sat→Sun window is 7 h of UTC; Tue/Thu move to 10:00 UTC."""
    got = PROD.windows(ny(2026, 10, 26), ny(2026, 11, 6))
    assert spans(got) == [
        (utc(2026, 10, 27, 9), utc(2026, 10, 27, 11), "probe"),
        (utc(2026, 10, 29, 9), utc(2026, 10, 29, 11), "probe"),
        (utc(2026, 11, 1, 2), utc(2026, 11, 1, 9), "hold"),  # 22:00 EDT → 04:00 EST
        (utc(2026, 11, 3, 10), utc(2026, 11, 3, 12), "probe"),
        (utc(2026, 11, 5, 10), utc(2026, 11, 5, 12), "probe"),
    ]


def test_cert_calendar_probes_every_night_from_1730_to_0830_eastern():
    """CERT: as needed in non-business hours, 17:30-08:30, every night."""
    got = CERT.upcoming(2, ny(2026, 1, 6, 12))
    assert spans(got) == [
        (ny(2026, 1, 6, 17, 30), ny(2026, 1, 7, 8, 30), "probe"),
        (ny(2026, 1, 7, 17, 30), ny(2026, 1, 8, 8, 30), "probe"),
    ]


def _one_window_calendar(start: str, end: str, day: str = "sun") -> outages.Schedule:
    section = config.CalendarConfig(
        timezone="America/New_York",
        windows=[config.WindowConfig(days=[day], start=start, end=end)],
    )
    return outages.Schedule(outages.Calendar.from_config("t", section))


def test_window_edge_at_a_nonexistent_time_shifts_forward_by_the_gap():
    """02:30 on 2026-03-08 does not exist in New York: it reads as 03:30 EDT (07:30 UTC)."""
    cal = _one_window_calendar("02:30", "05:00")
    [w] = cal.windows(utc(2026, 3, 8), utc(2026, 3, 9))
    assert w.start == utc(2026, 3, 8, 7, 30)
    assert w.start.astimezone(NY).strftime("%H:%M %Z") == "03:30 EDT"
    assert w.end == utc(2026, 3, 8, 9)


def test_window_edge_at_an_ambiguous_time_is_its_first_occurrence():
    """01:30 on 2026-11-01 happens twice in New York: the first (EDT, 05:30 UTC) counts."""
    cal = _one_window_calendar("01:30", "03:00")
    [w] = cal.windows(utc(2026, 11, 1), utc(2026, 11, 2))
    assert w.start == utc(2026, 11, 1, 5, 30)
    assert w.end == utc(2026, 11, 1, 8)  # 03:00 EST


def test_window_that_collapses_in_the_spring_gap_is_dropped():
    """02:00-03:00 on 2026-03-08 is no time at all in New York, so no window."""
    cal = _one_window_calendar("02:00", "03:00")
    assert cal.windows(utc(2026, 3, 8), utc(2026, 3, 9)) == []


def test_next_open_skips_a_hold_window_and_a_touching_probe_window():
    """Overlapping and touching windows are crossed until no window covers the instant."""
    section = config.CalendarConfig(
        windows=[
            config.WindowConfig(days=["mon"], start="01:00", end="03:00", policy="hold"),
            config.WindowConfig(days=["mon"], start="02:00", end="04:00", policy="probe"),
        ]
    )
    sched = outages.Schedule(outages.Calendar.from_config("x", section))
    got = sched.windows(ny(2026, 1, 5), ny(2026, 1, 6))
    assert spans(got) == [
        (ny(2026, 1, 5, 1), ny(2026, 1, 5, 3), "hold"),
        (ny(2026, 1, 5, 3), ny(2026, 1, 5, 4), "probe"),
    ]
    assert sched.next_open(ny(2026, 1, 5, 1, 30)) == ny(2026, 1, 5, 4)
    assert sched.hold_until(ny(2026, 1, 5, 1, 30)) == ny(2026, 1, 5, 3)
    assert sched.hold_until(ny(2026, 1, 5, 3, 30)) is None


def test_upcoming_lists_the_current_window_first_then_the_next_ones():
    """Inside the Saturday hold, upcoming(3) starts with it (whole, not clipped)."""
    got = PROD.upcoming(3, ny(2026, 1, 11, 1))
    assert [(w.start, w.policy.value) for w in got] == [
        (ny(2026, 1, 10, 22), "hold"),
        (ny(2026, 1, 13, 5), "probe"),
        (ny(2026, 1, 15, 5), "probe"),
    ]


def test_a_users_file_keeps_the_shipped_calendars_and_may_add_its_own():
    """[calendars.x] in a file adds to ace-production and ace-cert rather than replacing them."""
    cfg = config.parse_config(
        {
            "calendars": {
                "x": {
                    "timezone": "UTC",
                    "windows": [{"days": ["Monday"], "start": "00:00", "end": "01:00"}],
                }
            }
        }
    )
    assert {"ace-production", "ace-cert", "x"} <= set(cfg.calendars)


def test_an_adapter_naming_an_unknown_calendar_is_a_config_error():
    """calendars = ['nope'] names the key at fault."""
    with pytest.raises(errors.ConfigError, match="calendars"):
        config.parse_config(
            {"adapters": {"a": {"type": "filedrop", "directory": "x", "calendars": ["nope"]}}}
        )


# --- properties -------------------------------------------------------------------------

INSTANTS = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)
SCHEDULES = st.sampled_from(
    [PROD, CERT, outages.Schedule([CALS["ace-production"], CALS["ace-cert"]])]
)
RANDOM_WINDOWS = st.lists(
    st.builds(
        config.WindowConfig,
        days=st.lists(st.sampled_from(config.DAYS), min_size=1, max_size=3, unique=True),
        start=st.sampled_from(["00:00", "01:30", "02:30", "05:00", "17:30", "22:00", "23:59"]),
        end=st.sampled_from(["00:30", "02:00", "03:00", "04:00", "07:00", "08:30", "23:00"]),
        policy=st.sampled_from(["hold", "probe"]),
    ).filter(lambda w: w.start != w.end),
    min_size=1,
    max_size=4,
)


def closed_spans(windows: list[outages.Window]) -> list[tuple[datetime, datetime]]:
    """Windows of any policy as closed time: touching pieces (hold then probe) join."""
    out: list[tuple[datetime, datetime]] = []
    for w in windows:
        if out and out[-1][1] >= w.start:
            out[-1] = (out[-1][0], max(out[-1][1], w.end))
        else:
            out.append((w.start, w.end))
    return out


@settings(max_examples=150, deadline=None)
@given(now=INSTANTS, sched=SCHEDULES)
def test_next_open_lies_in_no_window_and_no_window_begins_before_it(now, sched):
    """For any instant: next_open is in no window, and no closed span starts in (now, it)."""
    t = sched.next_open(now)
    assert t >= now
    assert sched.window_at(t) is None
    for start, end in closed_spans(sched.windows(now - timedelta(days=1), t + timedelta(days=1))):
        assert not start <= t < end
        assert not now < start < t, (now, t, start)


@settings(max_examples=100, deadline=None)
@given(now=INSTANTS, windows=RANDOM_WINDOWS, zone=st.sampled_from(["America/New_York", "UTC"]))
def test_random_calendars_normalise_to_sorted_windows_that_never_overlap(now, windows, zone):
    """Normalised windows are sorted, disjoint, non-empty; next_open lies in none of them."""
    section = config.CalendarConfig(timezone=zone, windows=windows)
    sched = outages.Schedule(outages.Calendar.from_config("r", section))
    got = sched.windows(now, now + timedelta(days=10))
    for a, b in itertools.pairwise(got):
        assert a.start < a.end <= b.start
        assert not (a.end == b.start and a.policy is b.policy)
    t = sched.next_open(now)
    assert sched.window_at(t) is None
    assert not any(now < start < t for start, _ in closed_spans(got))
