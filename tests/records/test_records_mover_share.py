"""The mover's share of the time (issue 20): ``max_share`` while it keeps up; rising by
half a round, up to ``behind_share``, while the oldest filing due to move waits longer
round after round (a steady intake the default share cannot follow); back down as it
catches up; a backlog that only drains (the same wait every round) stays at max_share."""

from __future__ import annotations

from gateway import config
from gateway.service.mover import next_share

SECTION = config.parse_config({"records": {"max_share": 0.1, "behind_share": 0.5}}).records


def shares(lags: list[float | None]) -> list[float]:
    share, before, out = SECTION.max_share, None, []
    for lag in lags:
        share, before = next_share(share, before, lag, SECTION), lag
        out.append(round(share, 4))
    return out


def test_the_share_rises_while_the_mover_falls_behind_up_to_behind_share() -> None:
    assert shares([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]) == [0.1, 0.15, 0.225, 0.3375, 0.5, 0.5, 0.5]


def test_the_share_falls_back_to_max_share_as_the_mover_catches_up() -> None:
    assert shares([1.0, 2.0, 3.0, 2.5, 2.0, 1.0, 1.0]) == [0.1, 0.15, 0.225, 0.15, 0.1, 0.1, 0.1]


def test_a_backlog_that_only_drains_stays_at_max_share() -> None:
    """A gateway started on an old store: every round's oldest waited the same 30 days."""
    assert shares([2_592_000.0] * 5) == [0.1] * 5
    assert shares([None, None]) == [0.1, 0.1]
