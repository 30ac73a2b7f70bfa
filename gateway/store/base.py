"""The Store protocol: the operations the service and the dispatcher need.

Every method is one transaction. Completion methods are *fenced*: they take the lease
token the claim handed out and change nothing (returning False) when the delivery was
reclaimed by someone else in the meantime.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from gateway import audit, models

SCHEMA_VERSION = 5


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


@dataclass(frozen=True, slots=True)
class Claim:
    """One delivery claimed for one attempt."""

    delivery_id: str
    adapter: str
    token: int
    attempts: int
    filing: models.Filing


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
    ack_overdue: bool | None = None


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
class Controls:
    """X12 control numbers allocated for one attempt of one delivery."""

    interchange: int
    group: int


@dataclass(frozen=True, slots=True)
class AckTarget:
    """The delivery an ack was correlated to, as the ack decision needs to see it."""

    delivery_id: str
    filing_id: str
    adapter: str
    state: models.DeliveryState
    attempts: int
    filing_received_at: datetime


@dataclass(frozen=True, slots=True)
class AckDecision:
    """What an ack does to its delivery: a new state (or none: history only)."""

    effect: str
    state: models.DeliveryState | None = None
    at: datetime | None = None
    error: str | None = None


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
        self, *, owner: str, now: datetime, lease_s: float, limits: dict[str, int]
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
    async def defer(self, claim: Claim, *, now: datetime, until: datetime, reason: str) -> bool: ...
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

    async def filing_history(self, filing_id: str) -> list[audit.AuditRow]: ...
    def audit_rows(self, *, after_seq: int = 0) -> AsyncIterator[audit.AuditRow]: ...
    async def append_audit(
        self, event: str, *, actor: Actor, now: datetime, details: dict[str, Any]
    ) -> None: ...

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


def open_store(url: str) -> Store:
    """The store for a URL: ``sqlite:///path`` or ``postgresql://…``."""
    if url.startswith("sqlite:///"):
        from gateway.store import sqlite

        return sqlite.SqliteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        from gateway.store import postgres

        return postgres.PostgresStore(url)
    raise ValueError(f"unsupported store URL {url!r}")
