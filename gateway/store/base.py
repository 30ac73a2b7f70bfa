"""The store: durable state of filings, deliveries, acks, callbacks and the audit trail.

``Store`` names every method once, here, with the transaction body it runs (each body
written once, ``sansio``): ``write(body)`` runs it in a write transaction, ``read(body)`` on
a reader, and the parameters after ``cx`` are the method's. The dispatch methods come
with their module (``dispatch.DispatchStore``). A driver (``sqlite.SqliteStore``,
``postgres.PostgresStore``) adds only what truly differs: connections, how a body runs
(``_tx``, ``_rx``, ``_rx_snapshot``), retries and error translation. Every method is one
transaction. Completion methods are *fenced*: they take the lease token the claim handed
out and change nothing (returning False) when the delivery was reclaimed by someone else
in the meantime.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from gateway.audit import chain as audit
from gateway.store import (
    acks,
    actions,
    archive,
    callbacks,
    coalesce,
    dispatch,
    inbound,
    outages,
    reads,
    schema,
    series,
    trail,
    x12gaps,
)
from gateway.store.accept import AcceptCall, accept_many, results
from gateway.store.complete import Completion, complete_many
from gateway.store.sansio import read, snapshot, write
from gateway.values import AcceptResult, Action, Actor, Claim, NewFiling


class Store(dispatch.DispatchStore):
    """Durable state of filings, deliveries and the audit trail, on a driver."""

    def __init__(self, *, group_max: int) -> None:
        #: concurrent completions share one transaction (see ``coalesce``)
        self._completes: coalesce.Coalescer[Completion, bool]
        self._completes = coalesce.Coalescer(self._complete_batch, max_batch=group_max)
        #: and concurrent accepts one ``accept_many`` (SQLite: one operation of its group)
        self._accepts: coalesce.Coalescer[AcceptCall, list[AcceptResult]]
        self._accepts = coalesce.Coalescer(self._accept_batch, max_batch=group_max)
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
        return await self._accepts.submit(AcceptCall(list(items), actor, now))

    async def _accept_batch(self, calls: list[AcceptCall]) -> list[coalesce.Outcome]:
        """Concurrent accepts in one transaction: one fair-state read, one audit head and
        one audit insert for all; when it fails (not as a whole), each alone, so one call's
        failure fails no other."""
        try:
            found = results(await self._tx(accept_many, calls))
        except Exception as exc:
            if len(calls) == 1 or self._whole_batch_failed(exc):
                raise
            return [await self._accept_alone(call) for call in calls]
        return [(True, r) for r in found]

    def _whole_batch_failed(self, exc: BaseException) -> bool:
        """Whether ``exc`` failed the batch as a whole (the connection, the commit), so
        running each call alone would only fail again."""
        return False

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

    async def _accept_alone(self, call: AcceptCall) -> coalesce.Outcome:
        """One caller's accept in a transaction of its own (a coalesced batch failed)."""
        try:
            [found] = results(await self._tx(accept_many, [call]))
        except Exception as exc:
            return (False, exc)
        return (True, found)

    # --- one body each -----------------------------------------------------------------

    schema_version = read(schema.schema_version)
    migrate = write(schema.migrate)

    get_filing = read(reads.get_filing)
    list_filings = read(reads.list_filings)
    counts = read(reads.counts)
    queue_stats = read(reads.queue_stats)
    open_filings = read(reads.open_filings)
    filing_by_key = read(reads.filing_by_key)

    append_audit = write(trail.append_audit)
    filing_history = read(trail.history)
    audit_head = read(trail.head)
    prune_audit = write(trail.prune)

    async def audit_rows(self, *, after_seq: int = 0) -> AsyncIterator[audit.AuditRow]:
        last = after_seq
        while True:
            found = await self._rx(trail.page, last)
            if not found:
                return
            for r in found:
                yield trail.audit_row(r)
            last = found[-1][0]

    async def retry_filing(self, filing_id: str, *, actor: Actor, now: datetime) -> Action:
        return await self._tx(actions.operator_action, "retry", filing_id, actor, now)

    async def cancel_filing(self, filing_id: str, *, actor: Actor, now: datetime) -> Action:
        return await self._tx(actions.operator_action, "cancel", filing_id, actor, now)

    async def resend_filing(
        self, filing_id: str, *, actor: Actor, now: datetime, reason: str
    ) -> Action:
        return await self._tx(actions.operator_action, "resend", filing_id, actor, now, reason)

    bulk_action = write(actions.bulk_action)

    record_ack = write(acks.record_ack)
    list_acks = read(acks.list_acks)
    flag_overdue = write(acks.flag_overdue)
    extend_ack_deadlines = write(acks.extend_ack_deadlines)
    close_ack = write(acks.close_ack)

    x12_gaps = snapshot(x12gaps.x12_gaps)  # counts and gaps read in one snapshot agree

    allocate_controls = write(x12gaps.allocate_controls)

    claim_callbacks = write(callbacks.claim_callbacks)
    finish_callback = write(callbacks.finish_callback)
    release_callbacks = write(callbacks.release_callbacks)
    next_callback_due = read(callbacks.next_callback_due)
    list_callbacks = read(callbacks.list_callbacks)
    retry_callbacks = write(callbacks.retry_callbacks)

    reject_event = write(inbound.reject_event)
    list_rejected = read(inbound.list_rejected)
    get_rejected = read(inbound.get_rejected)
    replay_failed = write(inbound.replay_failed)
    replayed = write(inbound.replayed)
    series_accepted = read(series.accepted)
    series_delivered = read(series.delivered)

    add_outage = write(outages.add_outage)
    list_outages = read(outages.list_outages)
    remove_outage = write(outages.remove_outage)
    release_deferred = write(outages.release_deferred)
    defer_held = write(outages.defer_held)
    flag_at_risk = write(outages.flag_at_risk)

    add_pause = write(outages.add_pause)
    list_pauses = read(outages.list_pauses)
    controls = read(outages.controls)
    resume_pause = write(outages.resume_pause)
    expire_pauses = write(outages.expire_pauses)

    archive_candidates = read(archive.candidates)
    archive_enter = write(archive.enter)
    archive_restore = write(archive.restore)
    record_holds = read(archive.holds)
    place_hold = write(archive.place_hold)
    release_hold = write(archive.release_hold)
    archive_segments = read(archive.segments)
    audit_last_prune = read(archive.last_prune)
    archive_purged = write(archive.purged)
    live_seqs = read(archive.live_seqs)
    sealed_sample = read(archive.sealed_sample)
    live_references = read(archive.live_references)
    archive_batch = snapshot(archive.batch)
