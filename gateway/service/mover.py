"""The records mover (issue 20): a background task of ``serve`` that moves finished
filings past their live period from the store into archive segments.

Between rounds it waits ``interval``; while a backlog drains (a round moved a full batch)
it rests so that it works at most ``max_share`` of the time, a share that rises towards
``behind_share`` while it falls behind a steady intake (``next_share``).

A round: read a batch of candidates (``Policy.decide`` says archive), grouped by retention
rule and month of receipt so a segment expires whole; per group read every row in one
snapshot, build and put the segment in a worker thread, then one store transaction checks
nothing moved, deletes the live rows (their audit rows too: the segment holds them, and
``audit verify`` reads them there) and enters the segment's hash in the audit chain
(``store.archive_enter``); last the index learns it (derived data).

Crash safety, by where a kill lands: before the put ends, nothing is visible (the storage
deletes ``.tmp-`` files on open); between the put and the commit the segment is *extra*
(not entered) and its filings are still live: ``recover`` deletes it and a later round
redoes the batch; after the commit the rows are gone and the segment is entered:
``recover`` indexes it. Rows are deleted only in the transaction that enters their
segment's hash, so nothing is lost, and a segment is entered iff its rows are gone, so
nothing is duplicated. On PostgreSQL one gateway moves at a time (a session advisory lock
on a connection of its own, held while the mover runs; ``recover`` runs under it).

``EDIGW_RECORDS_CRASH_AT`` (``after_read``, ``after_put``, ``after_enter``) makes the
process SIGKILL itself at that point of its first round: the reliability suite's hook.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
import structlog

from gateway import errors, values
from gateway.records import retention, segment
from gateway.records.query import from_micros
from gateway.service.records import Records, facts
from gateway.store import archive, base

log = structlog.get_logger("gateway.records")

CRASH_ENV = "EDIGW_RECORDS_CRASH_AT"
#: PostgreSQL session advisory lock of the mover ('edgw', 3)
LOCK_MOVER = (0x6564_6777, 3)
ACTOR = values.Actor(name="records-mover")


def _crash(point: str) -> None:
    if os.environ.get(CRASH_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


def build(
    cfg: Any, store: base.Store, clock: Any, environ: Mapping[str, str], worker_index: int
) -> Mover | None:
    """The mover of a ``serve`` process: None unless ``[records] enabled`` (and only in the
    first process of several workers). A bad key or keyring stops start-up here."""
    if not cfg.records.enabled or worker_index:
        return None
    records = Records(store=store, cfg=cfg, clock=clock, environ=environ)
    records.open()
    return Mover(records, store_url=cfg.gateway.store)


def next_share(share: float, before: float | None, lag: float | None, section: Any) -> float:
    """The mover's share of the time after a full round: ``max_share`` while it keeps up;
    up by half (to ``behind_share``) while it falls behind — ``lag``, how long the oldest
    filing due to move has waited past its live period, grew since the round ``before`` —
    and down by a third (to ``max_share``) while it catches up. So a steady intake the
    default share cannot follow is met, and a backlog that only drains (a gateway started
    on an old store) is taken at ``max_share``, sparing intake."""
    low, high = float(section.max_share), max(section.max_share, float(section.behind_share))
    if before is None or lag is None or lag == before:
        return share
    return min(high, share * 1.5) if lag > before else max(low, share / 1.5)


class Mover:
    """Moves finished filings into the archive, a round every ``[records] interval``."""

    def __init__(self, records: Records, *, store_url: str) -> None:
        self.records = records
        self.store = records.store
        self.store_url = store_url
        self.section = records.section
        #: seconds the oldest filing due to move (by the last round) waited past its period
        self.lag: float | None = None

    async def run(self) -> None:
        """Hold the mover's lock, recover, then move round after round (until cancelled)."""
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(self.records.close)
            await stack.enter_async_context(self._lock())
            await self.recover()
            share, lag = self.section.max_share, None
            while True:
                started = anyio.current_time()
                try:
                    moved = await self.round()
                except (errors.StoreError, OSError) as exc:
                    log.warning("records.round_failed", error=str(exc))
                    moved = 0
                if moved < self.section.batch_filings:
                    share, lag = self.section.max_share, None
                    await anyio.sleep(self.section.interval)
                else:  # a backlog: go on, but work at most ``share`` of the time
                    share = next_share(share, lag, self.lag, self.section)
                    lag = self.lag
                    busy = anyio.current_time() - started
                    await anyio.sleep(busy * (1 / share - 1))

    @contextlib.asynccontextmanager
    async def _lock(self) -> AsyncIterator[None]:
        if not self.store_url.startswith(("postgresql://", "postgres://")):
            yield  # SQLite: one gateway (its workers never run the mover)
            return
        import asyncpg

        conn = await asyncpg.connect(self.store_url)
        try:
            while True:  # another gateway moves; polled: a lock wait would pin a backend
                if await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *LOCK_MOVER):
                    break
                await anyio.sleep(self.section.interval)
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await conn.close()  # the session lock goes with it

    async def recover(self) -> dict[str, list[str]]:
        """Settle what a killed round left: extra segments whose filings are all live are
        deleted; entered segments the index lacks are indexed; purged ones deleted."""
        store, idx = self.records.archive()
        rows = await self.store.archive_segments()
        entered = {r[0]: r[1] for r in rows if r[6] is None}
        purged = {r[0] for r in rows if r[6] is not None}
        indexed = await anyio.to_thread.run_sync(idx.segments)
        done: dict[str, list[str]] = {"deleted": [], "indexed": [], "kept": []}
        for name in await anyio.to_thread.run_sync(store.list):
            if name in purged:
                await anyio.to_thread.run_sync(store.delete, name)
                await anyio.to_thread.run_sync(idx.remove, name)
                done["deleted"].append(name)
            elif name not in entered:
                done[await self._settle_extra(name)].append(name)
            elif name not in indexed:
                seg = await self._open(name, entered[name])
                written = segment.Written(
                    name=name, sha256=seg.sha256, size=seg.size, header=seg.header
                )
                await anyio.to_thread.run_sync(idx.add, written, list(seg))
                done["indexed"].append(name)
        if any(done.values()):
            log.warning("records.recovered", **done)
        return done

    async def _settle_extra(self, name: str) -> str:
        """A segment never entered: deleted when all its filings are still live (a round
        killed before its commit); else kept, for ``records verify`` to show a person."""
        store, _ = self.records.archive()
        seg = await self._open(name, None)
        ids = [e.id for e in seg.header.entries]
        if len(await self.store.live_seqs(ids)) != len(ids):
            return "kept"
        await anyio.to_thread.run_sync(store.delete, name)
        return "deleted"

    async def _open(self, name: str, sha: str | None) -> segment.Segment:
        store, _ = self.records.archive()
        return await anyio.to_thread.run_sync(
            functools.partial(
                segment.open_segment,
                store,
                name,
                keyring=self.records.keyring,
                expected_sha256=sha,
            )
        )

    async def round(self) -> int:
        """One round: up to ``batch_filings`` filings moved; how many."""
        self.records.archive()
        now = self.records.clock.now()
        policy = await self.records.policy()
        cutoff = now - min(r.live for r in policy.rules)
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        chosen, after, self.lag = 0, 0, None
        while chosen < self.section.batch_filings:
            found = await self.store.archive_candidates(cutoff, after, self.section.batch_filings)
            if not found:
                break
            if self.lag is None:
                self.lag = (cutoff - from_micros(int(found[0][7]))).total_seconds()
            for seq, fid, ftype, env, ref, filer, received, updated, _ in found:
                row = {"id": fid, "filing_type": ftype, "environment": env, "reference": ref}
                row |= {"filer_code": filer, "received_at": received, "updated_at": updated}
                verdict = policy.decide(facts(row), now)
                if verdict.decision is not retention.Decision.LIVE:
                    rule = verdict.rule.label if verdict.rule else ""
                    groups[(rule, facts(row).received_at.strftime("%Y-%m"))].append(seq)
                    chosen += 1
                    if chosen >= self.section.batch_filings:
                        break
            after = found[-1][0]
        moved = 0
        for key in sorted(groups):
            moved += await self._move(groups[key], now)
        return moved

    async def _move(self, seqs: list[int], now: Any) -> int:
        store, idx = self.records.archive()
        records = await self.store.archive_batch(seqs)
        if not records:
            return 0
        stamps = {int(r["filing"]["seq"]): archive.stamp_of(r) for r in records}
        _crash("after_read")
        written = await anyio.to_thread.run_sync(
            functools.partial(
                segment.write_segment, store, records, created_at=now, keyring=self.records.keyring
            )
        )
        _crash("after_put")
        info = {
            "name": written.name,
            "sha256": written.sha256,
            "first_id": records[0]["filing"]["id"],
            "last_id": records[-1]["filing"]["id"],
            # the audit rows the segment holds leave the live chain in the same transaction
            "audit_seqs": [a["seq"] for r in records for a in r["audit"]],
        }
        try:
            entered = await self.store.archive_enter(info, stamps, ACTOR, now)
        except errors.StoreError:
            with anyio.CancelScope(shield=True):
                await self._settle_extra(written.name)  # committed or not, it knows
            raise
        if not entered:
            await anyio.to_thread.run_sync(store.delete, written.name)
            log.info("records.batch_changed", segment=written.name, filings=len(records))
            return 0
        _crash("after_enter")
        await anyio.to_thread.run_sync(idx.add, written, records)
        log.info("records.archived", segment=written.name, filings=len(records))
        return len(records)
