"""The store: durable state of filings, deliveries, acks, callbacks and the audit trail.

``Store`` is one class made of the transaction bodies' feature classes (each body written
once, ``sansio``); a driver (``sqlite.SqliteStore``, ``postgres.PostgresStore``) adds only
what truly differs: connections, how a body runs (``_tx``, ``_rx``, ``_rx_snapshot``),
retries and error translation. Every method is one transaction. Completion methods are
*fenced*: they take the lease token the claim handed out and change nothing (returning
False) when the delivery was reclaimed by someone else in the meantime.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway.rules.acks import AckDecision as AckDecision
from gateway.rules.acks import AckTarget as AckTarget
from gateway.store import (
    acks,
    ackwait,
    actions,
    archive,
    callbacks,
    coalesce,
    dispatch,
    inbound,
    outages,
    reads,
    schema,
    trail,
    x12gaps,
)
from gateway.store.complete import Completion, complete_many
from gateway.store.schema import SCHEMA_VERSION as SCHEMA_VERSION
from gateway.store.values import BULK_FROM as BULK_FROM
from gateway.store.values import SYSTEM as SYSTEM
from gateway.store.values import AcceptResult as AcceptResult
from gateway.store.values import AckDecide as AckDecide
from gateway.store.values import Action as Action
from gateway.store.values import Actor as Actor
from gateway.store.values import BulkFilter as BulkFilter
from gateway.store.values import BulkResult as BulkResult
from gateway.store.values import CallbackClaim as CallbackClaim
from gateway.store.values import Claim as Claim
from gateway.store.values import Controls as Controls
from gateway.store.values import ListFilter as ListFilter
from gateway.store.values import NewFiling as NewFiling
from gateway.store.values import PruneResult as PruneResult
from gateway.store.values import QueueStats as QueueStats
from gateway.store.values import RiskWindow as RiskWindow


class Store(
    dispatch.DispatchStore,
    schema.SchemaStore,
    trail.AuditStore,
    inbound.InboundStore,
    reads.ReadsStore,
    callbacks.CallbacksStore,
    x12gaps.X12GapsStore,
    actions.ActionsStore,
    outages.OutagesStore,
    acks.AcksStore,
    ackwait.AckWaitStore,
    archive.ArchiveStore,
):
    """Durable state of filings, deliveries and the audit trail, on a driver."""

    def __init__(self, *, group_max: int) -> None:
        #: concurrent completions share one transaction (see ``coalesce``)
        self._completes: coalesce.Coalescer[Completion, bool]
        self._completes = coalesce.Coalescer(self._complete_batch, max_batch=group_max)
        self.claim_stats = [0, 0]

    async def open(self) -> None:
        raise NotImplementedError  # pragma: no cover - a driver provides it

    async def close(self) -> None:
        raise NotImplementedError  # pragma: no cover - a driver provides it

    async def ping(self) -> None:
        raise NotImplementedError  # pragma: no cover - a driver provides it

    async def accept(
        self, items: Sequence[NewFiling], *, actor: Actor, now: datetime
    ) -> list[AcceptResult]:
        raise NotImplementedError  # pragma: no cover - a driver provides it

    async def complete(
        self,
        claim: Claim,
        *,
        now: datetime,
        receipt: dict[str, Any],
        ack_due_at: datetime | None = None,
        hold_until_ack: bool = False,
    ) -> bool:
        return await self._completes.submit(
            Completion(claim, now, receipt, ack_due_at, hold_until_ack)
        )

    async def _complete_batch(self, batch: list[Completion]) -> list[coalesce.Outcome]:
        return [(True, done) for done in await self._tx(complete_many, batch)]
