"""The values the store takes and hands back (filings to accept, claims, filters, actions,
statistics, the cursor of a list's next page) and the X12 gaps report the API shows. Plain
frozen dataclasses and pydantic models, no I/O: the service, the API, the dispatcher and
the store all speak them, so they live below the store (``gateway.store.base`` re-exports
the store's). ``models`` stays the leaf contract adapters see; these build on it and on the
lifecycle and ack rules.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from gateway import errors, models
from gateway.rules import lifecycle
from gateway.rules.acks import AckDecision, AckTarget


@dataclass(frozen=True, slots=True)
class NewFiling:
    """A normalized filing and the adapters it goes to, ready to be accepted."""

    filing: models.Filing
    adapters: list[str]


@dataclass(frozen=True, slots=True)
class AcceptResult:
    """What happened to one filing at accept: created, or an earlier one returned."""

    filing_id: str
    created: bool
    error: Exception | None = None
    #: the filing as committed, when the store built it while writing (saves a read)
    view: models.FilingView | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """One delivery claimed for one attempt."""

    delivery_id: str
    adapter: str
    token: int
    attempts: int
    filing: models.Filing
    #: breaker probes this delivery failed before (a second failure spends an attempt)
    probe_failures: int = 0


@dataclass(frozen=True, slots=True)
class ListFilter:
    """Filters of ``GET /v1/filings``; all optional, combined with AND."""

    status: models.FilingStatus | None = None
    state: models.DeliveryState | None = None
    filing_type: models.FilingType | None = None
    environment: models.Environment | None = None
    reference: str | None = None
    adapter: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    #: True: only filings flagged at risk and not yet settled; False: only the others
    at_risk: bool | None = None
    ack_overdue: bool | None = None
    #: True: only filings with a delivery whose acks conflict (waiting for a person)
    ack_conflict: bool | None = None
    #: only these filer codes / environments (a token's scope, ``?filer_code=``); None: all
    filer_codes: tuple[str, ...] | None = None
    environments: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class RiskWindow:
    """A known outage for ``flag_at_risk``: a filing due inside it is at risk."""

    start: datetime
    end: datetime
    reason: str
    #: the adapter it holds (None: every adapter)
    adapter: str | None = None
    #: the environment it holds (None: every environment)
    environment: str | None = None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who caused a change: a token name, or ``system``; plus the request id."""

    name: str = "system"
    request_id: str | None = None


SYSTEM = Actor()


@dataclass(frozen=True, slots=True)
class Action:
    """Outcome of an operator action on a filing: the deliveries it changed."""

    filing_id: str
    changed: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What ``prune_audit`` removed (seqs inclusive) and the anchor row it appended."""

    removed: int
    first_seq: int | None
    last_seq: int | None
    anchor_seq: int | None


@dataclass(frozen=True, slots=True)
class QueueStats:
    """The shared queue at a glance (issue 7): what every process reports the same."""

    #: adapter → state → number of deliveries
    counts: dict[str, dict[str, int]]
    #: adapter → created_at of its oldest delivery still waiting (pending … deferred)
    oldest_waiting: dict[str, datetime]
    #: filings flagged at risk and not yet settled
    at_risk: int
    #: deliveries whose acknowledgements conflict, waiting for a person
    ack_conflicts: int = 0


@dataclass(frozen=True, slots=True)
class BulkFilter:
    """Which deliveries a bulk retry or cancel touches; all optional, combined with AND."""

    state: models.DeliveryState | None = None
    adapter: str | None = None
    filing_type: models.FilingType | None = None
    environment: models.Environment | None = None
    #: only deliveries last changed at or before this (pins the set across chunks)
    not_after: datetime | None = None
    #: only filings of these filer codes / environments (a token's scope); None: all
    filer_codes: tuple[str, ...] | None = None
    environments: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class BulkResult:
    """Outcome of one chunk of a bulk action (or of its dry run)."""

    #: deliveries matching the filter before this call
    matched: int
    #: (delivery id, filing id, adapter, state before) of those changed, or would be
    deliveries: list[tuple[str, str, str, str]] = field(default_factory=list)
    dry_run: bool = False


#: the states a bulk action may start from (the lifecycle table's; an in-flight delivery
#: is never cancelled: its send decides)
BULK_FROM = {
    "retry": tuple(s.value for s in lifecycle.sources(lifecycle.Event.OPERATOR_RETRY)),
    "cancel": tuple(s.value for s in lifecycle.sources(lifecycle.Event.OPERATOR_CANCEL)),
}


@dataclass(frozen=True, slots=True)
class Controls:
    """X12 control numbers allocated for one attempt of one delivery."""

    interchange: int
    group: int


#: the pure decision the store applies inside the ack's transaction
AckDecide = Callable[[models.Ack, AckTarget, datetime], AckDecision]


@dataclass(frozen=True, slots=True)
class CallbackClaim:
    """One callback event claimed for one attempt."""

    id: str
    filing_id: str
    url: str
    body: str
    attempts: int
    token: int
    created_at: datetime


# --- the cursor of a list's next page ------------------------------------------------


def encode_cursor(seq: int) -> str:
    """The opaque cursor a list hands out for its next page: the last ``seq`` it showed."""
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The ``seq`` a cursor names; 422 naming ``cursor`` when it is not one we handed out."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("s"):
            raise ValueError(cursor)
        return int(text[1:])
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.InvalidInput(
            "cursor is not one this gateway handed out",
            details=[{"loc": "query.cursor", "msg": "invalid cursor"}],
        ) from exc


# --- the X12 control-number gaps report (``GET /v1/x12/gaps``) ----------------------

_FROZEN = ConfigDict(frozen=True, extra="forbid")

GapKind = Literal["unsent", "unacknowledged"]
GAP_KINDS: tuple[GapKind, ...] = ("unsent", "unacknowledged")


@dataclass(frozen=True, slots=True)
class GapQuery:
    """Which allocations to look at."""

    sender: str | None = None
    receiver: str | None = None
    usage: str | None = None
    #: allocated at or after
    since: datetime | None = None
    #: allocated before (``--older-than`` leaves recent sends time to be answered)
    until: datetime | None = None
    kinds: tuple[GapKind, ...] = GAP_KINDS
    #: gaps listed at most (the per-pair counts cover all)
    limit: int = 100


class X12Gap(BaseModel):
    """One allocated control number the receiver never saw, or never answered."""

    model_config = _FROZEN

    sender: str
    receiver: str
    usage: str = Field(description="ISA15: `T` (test, CERT) or `P` (production).")
    interchange_control: int
    group_control: int
    kind: GapKind = Field(description="`unsent` or `unacknowledged`.")
    delivery_id: str
    filing_id: str
    attempt: int = Field(description="The delivery attempt the numbers were allocated for.")
    allocated_at: AwareDatetime
    delivery_state: str | None = Field(default=None, description="The delivery's state now.")
    attempt_error: str | None = Field(
        default=None, description="The error that attempt ended with, when one was recorded."
    )


class X12GapGroup(BaseModel):
    """Counts of one sender/receiver/usage's allocations by what became of them."""

    model_config = _FROZEN

    sender: str
    receiver: str
    usage: str
    allocated: int
    acknowledged: int
    unacknowledged: int
    unsent: int
    in_flight: int
    first_interchange: int
    last_interchange: int
    last_allocated_at: AwareDatetime


class X12GapReport(BaseModel):
    """``GET /v1/x12/gaps``: per pair counts, then the gaps themselves (oldest first)."""

    model_config = _FROZEN

    groups: list[X12GapGroup]
    gaps: list[X12Gap]
    truncated: bool = Field(description="More gaps match than `limit` listed.")
