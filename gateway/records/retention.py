"""Retention and legal holds, as data and one decision (pure: no I/O, ``now`` is given).

A *rule* says, for the filing types matching a glob and an environment (or any), how long a
finished filing stays in the live store (``live``, counted from when it finished) and how
long its record is kept in all (``total``, counted from when the gateway received it, the
gateway's mark for the date of entry of 19 CFR 163.4; never before it has left the live
store). The most specific rule wins: a named environment over any, an exact filing type over
a glob, a longer glob over a shorter one, a later rule over an earlier equal one.

A *hold* (legal hold, audit, protest, litigation) on a filing id, a reference or a filer
code keeps every record it covers past its retention until the hold is released. A held
record still moves to the archive (it stays searchable there); it is only never purged.

``decide`` says, for one filing, where it belongs now: ``live``, ``archive``, ``purge`` or
``held`` (its retention is over, a hold keeps it).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from gateway import durations, models
from gateway.records import extract

#: five years and the leap days they can hold
FIVE_YEARS = timedelta(days=5 * 365 + 2)


class Decision(StrEnum):
    """Where a filing's record belongs now."""

    LIVE = "live"
    ARCHIVE = "archive"
    PURGE = "purge"
    HELD = "held"


class HoldKind(StrEnum):
    """What a hold names."""

    FILING = "filing"
    REFERENCE = "reference"
    FILER_CODE = "filer_code"


@dataclass(frozen=True, kw_only=True)
class Rule:
    """How long the filings a rule matches stay live, and are kept in all."""

    #: a glob over filing types (``*``, ``manifest.*``, ``entry_summary``)
    filing_type: str = "*"
    #: ``cert`` or ``production``; None for either
    environment: str | None = None
    #: from finished to archived
    live: timedelta
    #: from received to purged
    total: timedelta

    def __post_init__(self) -> None:
        if self.live < timedelta(0):
            raise ValueError(f"{self.label}: live must not be negative")
        if self.total < self.live:
            raise ValueError(
                f"{self.label}: total ({self.total}) is shorter than live ({self.live})"
            )
        if self.environment is not None and self.environment not in set(models.Environment):
            raise ValueError(f"{self.label}: environment is cert or production")

    @property
    def label(self) -> str:
        return f"retention rule {self.filing_type}/{self.environment or '*'}"

    def matches(self, filing_type: str, environment: str) -> bool:
        return fnmatch.fnmatchcase(filing_type, self.filing_type) and (
            self.environment is None or self.environment == environment
        )

    def specificity(self) -> tuple[int, int, int]:
        exact = not any(c in self.filing_type for c in "*?[")
        literal = len(self.filing_type.replace("*", "").replace("?", ""))
        return (self.environment is not None, exact, literal)


@dataclass(frozen=True, kw_only=True)
class Hold:
    """A legal hold: the records it covers are kept past their retention until released."""

    id: str
    kind: HoldKind
    #: the filing id, reference or filer code held
    value: str
    reason: str
    placed_at: datetime
    released_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.placed_at <= now and (self.released_at is None or now < self.released_at)

    def covers(self, filing: Facts) -> bool:
        if self.kind is HoldKind.FILING:
            return filing.filing_id == self.value
        if self.kind is HoldKind.REFERENCE:
            return extract.normalize(filing.reference) == extract.normalize(self.value)
        return filing.filer_code.upper() == self.value.strip().upper()


@dataclass(frozen=True, kw_only=True)
class Facts:
    """What the decision needs to know of one filing."""

    filing_id: str
    filing_type: str
    environment: str
    reference: str
    filer_code: str
    received_at: datetime
    #: when it reached its final state; None while it is not finished
    finished_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class Verdict:
    decision: Decision
    #: one line for the audit row and ``records show``
    reason: str
    rule: Rule | None = None
    #: when it leaves (or left) the live store
    archive_at: datetime | None = None
    #: when its retention ends
    purge_at: datetime | None = None
    #: the ids of the active holds covering it
    holds: tuple[str, ...] = ()


#: production: 90 days live, five years in all; cert (test filings): 7 days, 90 days
DEFAULT_RULES = (
    Rule(environment="production", live=timedelta(days=90), total=FIVE_YEARS),
    Rule(environment="cert", live=timedelta(days=7), total=timedelta(days=90)),
)


class Policy:
    """Retention rules and holds; ``decide`` for one filing at a time."""

    def __init__(self, rules: Sequence[Rule] = DEFAULT_RULES, holds: Iterable[Hold] = ()) -> None:
        self.rules = tuple(rules)
        self.holds = tuple(holds)
        for filing_type in models.FilingType:
            for environment in models.Environment:
                if not any(r.matches(filing_type, environment) for r in self.rules):
                    raise ValueError(
                        f"no retention rule covers {filing_type} in {environment} "
                        '(add one with filing_type = "*")'
                    )

    def rule_for(self, filing_type: str, environment: str) -> Rule:
        best: Rule | None = None
        for r in self.rules:
            if r.matches(filing_type, environment) and (
                best is None or r.specificity() >= best.specificity()
            ):
                best = r
        if best is None:
            raise ValueError(f"no retention rule covers {filing_type} in {environment}")
        return best

    def holds_on(self, filing: Facts, now: datetime) -> tuple[str, ...]:
        return tuple(h.id for h in self.holds if h.active(now) and h.covers(filing))

    def decide(self, filing: Facts, now: datetime) -> Verdict:
        """Where ``filing`` belongs at ``now``."""
        held = self.holds_on(filing, now)
        if filing.finished_at is None:
            return Verdict(decision=Decision.LIVE, reason="not finished", holds=held)
        rule = self.rule_for(filing.filing_type, filing.environment)
        archive_at = filing.finished_at + rule.live
        purge_at = max(filing.received_at + rule.total, archive_at)
        common: dict[str, Any] = {
            "rule": rule,
            "archive_at": archive_at,
            "purge_at": purge_at,
            "holds": held,
        }
        if now >= purge_at:
            if held:
                return Verdict(
                    decision=Decision.HELD,
                    reason=f"retention ended {purge_at:%Y-%m-%d}; held by {', '.join(held)}",
                    **common,
                )
            return Verdict(
                decision=Decision.PURGE,
                reason=f"retention ({rule.label}) ended {purge_at:%Y-%m-%d}",
                **common,
            )
        if now >= archive_at:
            return Verdict(
                decision=Decision.ARCHIVE,
                reason=f"live period ({rule.label}) ended {archive_at:%Y-%m-%d}",
                **common,
            )
        return Verdict(
            decision=Decision.LIVE,
            reason=f"live until {archive_at:%Y-%m-%d} ({rule.label})",
            **common,
        )


def rules_from_config(items: Sequence[Mapping[str, Any]]) -> tuple[Rule, ...]:
    """``[[records.retention]]`` tables (``filing_type``, ``environment``, ``live``,
    ``total``; durations like ``90d``) → rules; ``ValueError`` names the key at fault."""
    rules = []
    for i, item in enumerate(items):
        where = f"records.retention[{i}]"
        unknown = set(item) - {"filing_type", "environment", "live", "total"}
        if unknown:
            raise ValueError(f"{where}.{sorted(unknown)[0]}: not a retention key")
        spans = {}
        for key in ("live", "total"):
            if key not in item:
                raise ValueError(f"{where}.{key}: required (a duration such as 90d)")
            try:
                spans[key] = timedelta(seconds=durations.parse_duration(item[key]))
            except ValueError as exc:
                raise ValueError(f"{where}.{key}: {exc}") from None
        filing_type = item.get("filing_type", "*")
        environment = item.get("environment")
        if not isinstance(filing_type, str) or not filing_type:
            raise ValueError(f"{where}.filing_type: a filing type or glob")
        if environment is not None and environment not in set(models.Environment):
            raise ValueError(f"{where}.environment: cert or production")
        try:
            rules.append(Rule(filing_type=filing_type, environment=environment, **spans))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    return tuple(rules)
