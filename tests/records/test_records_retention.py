"""Retention rules and legal holds: where a finished filing belongs at a given time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.records import retention
from gateway.records.retention import Decision, Hold, HoldKind, Policy, Rule

RECEIVED = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def facts(**kw) -> retention.Facts:
    base = {
        "filing_id": "fil_1",
        "filing_type": "entry_summary",
        "environment": "production",
        "reference": "XYZ-1234567-8",
        "filer_code": "XYZ",
        "received_at": RECEIVED,
        "finished_at": RECEIVED + DAY,
    }
    return retention.Facts(**{**base, **kw})


def hold(kind: HoldKind, value: str, **kw) -> Hold:
    return Hold(
        id=kw.pop("id", f"hold-{kind}"),
        kind=kind,
        value=value,
        reason="CBP audit 2026-17",
        placed_at=kw.pop("placed_at", RECEIVED),
        **kw,
    )


@pytest.mark.parametrize(
    ("after_finish", "decision"),
    [
        (DAY * 10, Decision.LIVE),
        (DAY * 89, Decision.LIVE),
        (DAY * 90, Decision.ARCHIVE),
        (DAY * 400, Decision.ARCHIVE),
        (DAY * (5 * 365 + 2), Decision.PURGE),
    ],
)
def test_production_stays_live_90_days_and_is_kept_five_years(after_finish, decision):
    verdict = Policy().decide(facts(), RECEIVED + DAY + after_finish)
    assert verdict.decision is decision
    assert verdict.archive_at == RECEIVED + DAY * 91
    assert verdict.purge_at == RECEIVED + retention.FIVE_YEARS


def test_cert_filings_go_sooner():
    verdict = Policy().decide(facts(environment="cert"), RECEIVED + DAY * 9)
    assert verdict.decision is Decision.ARCHIVE
    assert Policy().decide(facts(environment="cert"), RECEIVED + DAY * 91).decision is (
        Decision.PURGE
    )


def test_an_unfinished_filing_stays_live_however_old():
    verdict = Policy().decide(facts(finished_at=None), RECEIVED + DAY * 4000)
    assert (verdict.decision, verdict.reason) == (Decision.LIVE, "not finished")


def test_a_filing_finished_late_is_archived_before_it_is_purged():
    """Retention counts from receipt, but never ends before the live period does."""
    late = facts(finished_at=RECEIVED + DAY * 5 * 365)
    verdict = Policy().decide(late, RECEIVED + retention.FIVE_YEARS + DAY)
    assert verdict.decision is Decision.LIVE
    assert verdict.purge_at == verdict.archive_at


@pytest.mark.parametrize(
    "held",
    [
        hold(HoldKind.FILING, "fil_1"),
        hold(HoldKind.REFERENCE, "xyz 1234567 8"),
        hold(HoldKind.FILER_CODE, "xyz"),
    ],
    ids=["filing", "reference", "filer_code"],
)
def test_a_hold_keeps_a_record_past_its_retention(held):
    """By filing id, by reference (any spelling), by filer code: held, never purged."""
    policy = Policy(holds=[held, hold(HoldKind.FILING, "fil_other", id="unrelated")])
    late = RECEIVED + DAY * 3000
    verdict = policy.decide(facts(), late)
    assert verdict.decision is Decision.HELD
    assert verdict.holds == (held.id,)
    assert held.id in verdict.reason
    # a held record still leaves the live store: the archive keeps it searchable
    assert policy.decide(facts(), RECEIVED + DAY * 200).decision is Decision.ARCHIVE


def test_a_released_or_future_hold_does_not_keep_a_record():
    late = RECEIVED + DAY * 3000
    released = hold(HoldKind.FILING, "fil_1", released_at=late - DAY)
    future = hold(HoldKind.FILING, "fil_1", id="future", placed_at=late + DAY)
    assert Policy(holds=[released, future]).decide(facts(), late).decision is Decision.PURGE


def test_the_most_specific_rule_wins():
    rules = [
        Rule(live=DAY * 30, total=DAY * 365 * 5),
        Rule(filing_type="manifest.*", live=DAY * 20, total=DAY * 700),
        Rule(filing_type="manifest.ocean", live=DAY * 10, total=DAY * 600),
        Rule(filing_type="*", environment="cert", live=DAY, total=DAY * 30),
        Rule(filing_type="drawback", environment="production", live=DAY * 60, total=DAY * 3000),
    ]
    policy = Policy(rules)
    assert policy.rule_for("manifest.ocean", "production") is rules[2]
    assert policy.rule_for("manifest.air", "production") is rules[1]
    assert policy.rule_for("manifest.air", "cert") is rules[3]
    assert policy.rule_for("drawback", "production") is rules[4]
    assert policy.rule_for("isf", "production") is rules[0]


def test_a_policy_that_leaves_a_filing_type_uncovered_is_refused():
    with pytest.raises(ValueError, match=r"no retention rule covers .* in cert"):
        Policy([Rule(environment="production", live=DAY, total=DAY * 2)])


def test_rules_come_from_config_with_durations():
    rules = retention.rules_from_config(
        [
            {"live": "90d", "total": "1827d"},
            {"filing_type": "isf", "environment": "cert", "live": "1d", "total": "30d"},
        ]
    )
    assert rules[0] == Rule(live=DAY * 90, total=DAY * 1827)
    assert (rules[1].filing_type, rules[1].environment, rules[1].total) == ("isf", "cert", DAY * 30)


@pytest.mark.parametrize(
    ("items", "match"),
    [
        ([{"total": "5d"}], r"records\.retention\[0\]\.live: required"),
        ([{"live": "1d", "total": "5d"}, {"live": "x", "total": "5d"}], r"\[1\]\.live: 'x'"),
        ([{"live": "9d", "total": "5d"}], r"\[0\]: .* total .* is shorter than live"),
        ([{"live": "1d", "total": "5d", "environment": "prod"}], r"\[0\]\.environment"),
        ([{"live": "1d", "total": "5d", "keep": "forever"}], r"\[0\]\.keep: not a retention key"),
    ],
)
def test_a_bad_retention_config_names_the_key(items, match):
    with pytest.raises(ValueError, match=match):
        retention.rules_from_config(items)
