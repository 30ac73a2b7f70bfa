"""The whole audit chain of a gateway with a records archive (issue 20): the live rows
merged, in seq order, with the rows that moved into archive segments.

Archiving moves a filing's audit rows out of the live ``audit`` table into its segment
(``gateway.store.archive.enter``, in the transaction that enters the segment's hash), so
the live chain has gaps. ``Chain.audit_rows`` fills them. Each entered segment's span — the
first and last seq of the audit rows it holds — comes from the index (``audit_ranges``; read
from the segment itself when the index lacks it). A segment is opened, and checked against
the hash the chain entered, when the walk reaches its first seq; its rows wait in a heap
until their turn and are dropped once handed over. Memory thus holds the rows of the
segments whose spans overlap the walk's position, never the archive.

Rows at or below the last ``audit prune`` are out of the chain, archived or live. A segment
missing or altered raises ``RowsUnreadable`` at its first seq (``audit verify`` fails there,
naming it). A row both live and archived (segments written before archiving moved audit
rows) is handed over once, when both copies agree. Segments purged (``records purge``) took
their rows with them: ``purged`` lists their spans, which the verifier accepts as gaps.
"""

from __future__ import annotations

import functools
import heapq
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from gateway import errors
from gateway.audit import chain as audit
from gateway.records import crypto, index, segment, storage
from gateway.records import errors as rerrors
from gateway.store import base


class Records(Protocol):
    """What the chain needs of ``gateway.service.records.Records``: its archive."""

    storage: storage.DirectoryStorage | None
    index: index.Index | None
    keyring: crypto.Keyring | None

    def open(self) -> None: ...

    async def entered(self) -> dict[str, str]: ...


#: what opening a segment may raise, all of which make its rows unreadable
UNREADABLE = (errors.GatewayError, OSError, ValueError, KeyError, TypeError)


@dataclass(frozen=True, order=True)
class Span:
    """The audit rows an entered segment holds: seqs ``first`` to ``last``."""

    first: int
    last: int
    name: str
    sha256: str


def row_of(data: dict[str, Any]) -> audit.AuditRow:
    """An archived audit row (the live table's columns, details as JSON text)."""
    details = data["details"]
    return audit.AuditRow.from_dict(
        {**data, "details": json.loads(details) if isinstance(details, str) else details}
    )


class Chain:
    """The chain of ``store`` and its archive (``records``), read as one (``TrailHead``)."""

    def __init__(self, store: base.Store, records: Records | None) -> None:
        self.store = store
        self.records = records
        self.spans: list[Span] = []
        #: seq spans of purged segments (the verifier's ``purged``)
        self.purged: list[tuple[int, int]] = []
        self.pruned_to = 0
        #: entered segments whose span is unknown and that cannot be read: (name, why)
        self.unknown: list[tuple[str, str]] = []
        self._loaded = False

    async def load(self) -> Chain:
        """Read the segments entered, their spans and the prune point (once)."""
        if self._loaded:
            return self
        self._loaded = True
        prune = await self.store.audit_last_prune()
        self.pruned_to = int(json.loads(prune)["removed_to_seq"]) if prune else 0
        listed = await self.store.archive_segments()
        if not listed:
            return self
        entered = {r[0]: str(r[1]) for r in listed if r[6] is None}
        if self.records is not None:
            self.records.open()
        idx = None if self.records is None else self.records.index
        known = {} if idx is None else await anyio.to_thread.run_sync(idx.audit_ranges)
        self.purged = [
            (f, t) for n, (f, t, rows, purged) in known.items() if purged and rows and t > 0
        ]
        for name, sha in sorted(entered.items()):
            span = known.get(name)
            if span is None:
                try:
                    found = index.audit_range(await self._open(name, sha))
                except audit.RowsUnreadable as exc:
                    self.unknown.append((name, exc.reason))
                    continue
                if idx is not None:
                    await anyio.to_thread.run_sync(idx.note_range, name, found)
                span = (*found, False) if found else (0, -1, 0, False)
            if span[2] and span[1] > self.pruned_to:
                self.spans.append(Span(span[0], span[1], name, sha))
        self.spans.sort()
        return self

    async def _open(self, name: str, sha: str) -> list[dict[str, Any]]:
        """Segment ``name``'s records, verified against ``sha`` (the chain's)."""
        if self.records is None or self.records.storage is None:
            raise audit.RowsUnreadable(self.pruned_to + 1, f"archive segment {name}: no archive")
        store, keyring = self.records.storage, self.records.keyring

        def _read() -> list[dict[str, Any]]:
            return list(segment.open_segment(store, name, keyring=keyring, expected_sha256=sha))

        try:
            return await anyio.to_thread.run_sync(_read)
        except UNREADABLE as exc:
            what = "missing" if isinstance(exc, rerrors.SegmentMissing) else "unreadable"
            raise audit.RowsUnreadable(
                self.pruned_to + 1, f"archive segment {name} is {what}: {exc}"
            ) from exc

    async def _rows(self, span: Span) -> list[tuple[int, int, audit.AuditRow]]:
        try:
            records = await self._open(span.name, span.sha256)
        except audit.RowsUnreadable as exc:
            raise audit.RowsUnreadable(span.first, exc.reason) from exc
        out = []
        for n, rec in enumerate(records):
            for data in rec.get("audit") or ():
                try:
                    row = row_of(data)
                except UNREADABLE as exc:
                    reason = f"archive segment {span.name}: record {n} holds a bad audit row"
                    raise audit.RowsUnreadable(span.first, f"{reason} ({exc})") from exc
                if row.seq > self.pruned_to:
                    out.append((row.seq, id(row), row))
        return out

    async def audit_rows(self, *, after_seq: int = 0) -> AsyncIterator[audit.AuditRow]:
        """Every row of the chain after ``after_seq``, in seq order, live or archived."""
        await self.load()
        if self.unknown:
            name, why = self.unknown[0]
            raise audit.RowsUnreadable(self.pruned_to + 1, why or f"archive segment {name}")
        spans = [s for s in self.spans if s.last > after_seq]
        heap: list[tuple[int, int, audit.AuditRow]] = []
        nxt = 0

        async def reach(seq: float) -> None:
            nonlocal nxt
            while nxt < len(spans) and spans[nxt].first <= seq:
                for item in await self._rows(spans[nxt]):
                    if item[0] > after_seq:
                        heapq.heappush(heap, item)
                nxt += 1

        async for live in self.store.audit_rows(after_seq=max(after_seq, 0)):
            await reach(live.seq)
            while heap and heap[0][0] < live.seq:
                yield heapq.heappop(heap)[2]
            if heap and heap[0][0] == live.seq:
                copy = heapq.heappop(heap)[2]
                if copy.hash != live.hash:
                    raise audit.RowsUnreadable(
                        live.seq,
                        f"row {live.seq} differs between the live trail and its archive segment",
                    )
            yield live
        await reach(float("inf"))
        while heap:
            yield heapq.heappop(heap)[2]


async def history(
    records: Records, filing_id: str, rows: list[dict[str, Any]], read: str | None
) -> list[dict[str, Any]]:
    """A record's audit ``rows`` (live, or from segment ``read``) with those of its earlier
    lives: archiving moves a filing's audit rows into its segment and restore leaves them
    there, so a filing restored (or archived again) has its history in every segment that
    holds a copy of it, then live. By seq, each row once."""
    records.open()
    if records.index is None or records.storage is None:
        return rows
    store, idx = records.storage, records.index
    hits = await anyio.to_thread.run_sync(idx.locate_all, filing_id)
    by_seq = {int(a["seq"]): a for a in rows}
    entered = await records.entered()
    for hit in hits:
        if hit.segment not in entered or hit.segment == read:
            continue
        opened = await anyio.to_thread.run_sync(
            functools.partial(
                segment.open_segment,
                store,
                hit.segment,
                keyring=records.keyring,
                expected_sha256=entered[hit.segment],
            )
        )
        for a in opened.record(filing_id).get("audit") or ():
            by_seq.setdefault(int(a["seq"]), a)
    return [by_seq[s] for s in sorted(by_seq)]


__all__ = ["Chain", "Records", "Span", "history"]
