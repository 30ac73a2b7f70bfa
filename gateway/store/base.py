"""The Store protocol: the operations the service and the dispatcher need.

Every method is one transaction. Completion methods are *fenced*: they take the lease
token the claim handed out and change nothing (returning False) when the delivery was
reclaimed by someone else in the meantime.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from gateway import models
from gateway.audit import chain as audit
from gateway.rules import lifecycle, outages
from gateway.rules.acks import AckDecision, AckTarget

if TYPE_CHECKING:
    from gateway.store import callback_retry, x12gaps

#: the highest migration version
SCHEMA_VERSION = 7


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


class Store(Protocol):
    """Durable state of filings, deliveries and the audit trail."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def migrate(self) -> int: ...
    async def schema_version(self) -> int: ...
    async def ping(self) -> None: ...

    async def accept(
        self, items: Sequence[NewFiling], *, actor: Actor, now: datetime
    ) -> list[AcceptResult]: ...

    async def claim(
        self,
        *,
        owner: str,
        now: datetime,
        lease_s: float,
        limits: dict[str, int],
        probing: frozenset[str] = frozenset(),
    ) -> list[Claim]: ...
    async def renew(self, *, owner: str, tokens: dict[str, int], until: datetime) -> int: ...
    async def complete(
        self,
        claim: Claim,
        *,
        now: datetime,
        receipt: dict[str, Any],
        ack_due_at: datetime | None = None,
        hold_until_ack: bool = False,
    ) -> bool: ...
    async def schedule_retry(
        self, claim: Claim, *, now: datetime, at: datetime, error: str
    ) -> bool: ...
    async def defer(
        self,
        claim: Claim,
        *,
        now: datetime,
        until: datetime,
        reason: str,
        probe_failed: bool = False,
    ) -> bool: ...
    async def kill(
        self, claim: Claim, *, now: datetime, error: str, spent: bool = True
    ) -> bool: ...
    async def release(self, *, owner: str, now: datetime) -> int: ...
    async def next_due(self) -> datetime | None: ...

    async def get_filing(self, filing_id: str) -> models.FilingView | None: ...
    async def list_filings(
        self, flt: ListFilter, *, limit: int, cursor: str | None
    ) -> models.Page: ...
    async def retry_filing(self, filing_id: str, *, actor: Actor, now: datetime) -> Action: ...
    async def cancel_filing(self, filing_id: str, *, actor: Actor, now: datetime) -> Action: ...
    async def counts(self) -> dict[str, dict[str, int]]: ...

    # monitoring (issue 7)
    async def queue_stats(self) -> QueueStats: ...
    async def bulk_action(
        self,
        action: str,
        flt: BulkFilter,
        *,
        actor: Actor,
        now: datetime,
        reason: str,
        limit: int,
        dry_run: bool = False,
    ) -> BulkResult: ...

    # outages (issue 3)
    async def add_outage(
        self, request: outages.OutageRequest, *, actor: Actor, now: datetime
    ) -> outages.Outage: ...
    async def list_outages(
        self, *, now: datetime, include_past: bool = False
    ) -> list[outages.Outage]: ...
    async def remove_outage(
        self, outage_id: str, *, actor: Actor, now: datetime
    ) -> outages.Outage: ...
    async def defer_held(
        self,
        *,
        adapter: str,
        until: datetime,
        reason: str,
        now: datetime,
        environment: str | None = None,
    ) -> int: ...
    async def flag_at_risk(
        self, *, now: datetime, due_before: datetime, windows: Sequence[RiskWindow] = ()
    ) -> list[tuple[str, datetime]]: ...

    async def filing_history(self, filing_id: str) -> list[audit.AuditRow]: ...
    def audit_rows(self, *, after_seq: int = 0) -> AsyncIterator[audit.AuditRow]: ...
    async def append_audit(
        self, event: str, *, actor: Actor, now: datetime, details: dict[str, Any]
    ) -> None: ...
    async def audit_head(self) -> tuple[int, str] | None: ...
    async def prune_audit(
        self, *, before: datetime, actor: Actor, now: datetime
    ) -> PruneResult: ...

    async def reject_event(self, event: models.RejectedEvent) -> bool: ...
    async def list_rejected(
        self, *, source: str | None, limit: int, cursor: str | None
    ) -> tuple[list[models.RejectedEvent], str | None]: ...

    # --- acknowledgements, ack deadlines, X12 control numbers, callbacks (schema v5) ---
    async def record_ack(
        self, ack: models.Ack, *, decide: AckDecide, actor: Actor, now: datetime
    ) -> models.AckRecord: ...
    async def list_acks(
        self, *, matched: bool | None, filing_id: str | None, limit: int
    ) -> list[models.AckRecord]: ...
    async def flag_overdue(self, *, now: datetime) -> list[tuple[str, str, str]]: ...
    async def extend_ack_deadlines(self, adapter: str, *, by_s: float, now: datetime) -> int: ...
    async def resend_filing(
        self, filing_id: str, *, actor: Actor, now: datetime, reason: str
    ) -> Action: ...
    async def close_ack(
        self, filing_id: str, *, actor: Actor, now: datetime, reason: str
    ) -> Action: ...
    async def allocate_controls(
        self,
        *,
        sender: str,
        receiver: str,
        usage: str,
        delivery_id: str,
        filing_id: str,
        attempt: int,
        now: datetime,
        token: int | None = None,
    ) -> Controls | None: ...
    async def claim_callbacks(
        self, *, owner: str, now: datetime, lease_s: float, limit: int
    ) -> list[CallbackClaim]: ...
    async def finish_callback(
        self,
        claim: CallbackClaim,
        *,
        now: datetime,
        state: str,
        at: datetime | None = None,
        error: str | None = None,
    ) -> bool: ...
    async def release_callbacks(self, *, owner: str, now: datetime) -> int: ...
    async def next_callback_due(self) -> datetime | None: ...
    async def list_callbacks(
        self, *, filing_id: str | None, state: str | None, limit: int
    ) -> list[models.CallbackView]: ...
    # operator reads and actions of the CLI (issue 21)
    async def retry_callbacks(
        self, sel: callback_retry.CallbackSelection, *, actor: Actor, now: datetime, reason: str
    ) -> callback_retry.CallbackRetry: ...
    async def x12_gaps(self, q: x12gaps.GapQuery) -> x12gaps.X12GapReport: ...


def sqlite_url(url: str) -> tuple[str, dict[str, str]]:
    """``sqlite:///path?synchronous=normal`` → the file path and its options."""
    path, _, query = url.removeprefix("sqlite:///").partition("?")
    return path, dict(urllib.parse.parse_qsl(query))
