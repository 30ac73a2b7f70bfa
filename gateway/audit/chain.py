"""The append-only, hash-chained audit trail: row hashing and chain verification.

Each row's hash is SHA-256 over the canonical JSON of the row (sequence, time, actor,
filing and delivery ids, event, details) followed by the previous row's hash, so a
changed, removed, reordered or inserted row breaks every hash after it.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


#: what ``json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
#: builds on every call, built once
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
#: characters json.dumps(ensure_ascii=False) escapes in a string
_ESCAPED = re.compile(r'["\\\x00-\x1f]')


def canonical(value: Any) -> str:
    """The one JSON spelling used for hashing: sorted keys, no spaces, UTF-8."""
    return _CANONICAL.encode(value)


def row_hash(
    prev_hash: str,
    *,
    seq: int,
    at: str,
    actor: str,
    filing_id: str | None,
    delivery_id: str | None,
    event: str,
    details: dict[str, Any],
) -> str:
    """SHA-256 over the canonical JSON of the row, then the previous row's hash."""
    return row_hash_of_canonical(
        prev_hash,
        seq=seq,
        at=at,
        actor=actor,
        filing_id=filing_id,
        delivery_id=delivery_id,
        event=event,
        details_json=canonical(details),
    )


def _s(value: str | None) -> str:
    """``canonical(value)`` for a string or None; most need no escaping at all."""
    if value is None:
        return "null"
    if _ESCAPED.search(value) is None:
        return f'"{value}"'
    return _CANONICAL.encode(value)


def row_hash_of_canonical(
    prev_hash: str,
    *,
    seq: int,
    at: str,
    actor: str,
    filing_id: str | None,
    delivery_id: str | None,
    event: str,
    details_json: str,
) -> str:
    """``row_hash`` for details already in canonical JSON (what the stores write): the
    row's canonical JSON is spelled out with its keys in sorted order, so the details are
    serialised once per row, not twice. The same bytes as ``canonical`` of the whole row."""
    if _ESCAPED.search(f"{actor}{at}{delivery_id}{event}{filing_id}") is None:
        # the common case: one look at the five strings, not one each (None reads "None")
        d = "null" if delivery_id is None else f'"{delivery_id}"'
        f = "null" if filing_id is None else f'"{filing_id}"'
        body = (
            f'{{"actor":"{actor}","at":"{at}","delivery_id":{d},"details":{details_json},'
            f'"event":"{event}","filing_id":{f},"seq":{int(seq)}}}'
        )
    else:
        body = (
            f'{{"actor":{_s(actor)},"at":{_s(at)},"delivery_id":{_s(delivery_id)},'
            f'"details":{details_json},"event":{_s(event)},"filing_id":{_s(filing_id)},'
            f'"seq":{int(seq)}}}'
        )
    return hashlib.sha256((body + prev_hash).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditRow:
    seq: int
    at: str
    actor: str
    filing_id: str | None
    delivery_id: str | None
    event: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "filing_id": self.filing_id,
            "delivery_id": self.delivery_id,
            "event": self.event,
            "details": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditRow:
        """The row ``as_dict`` wrote; raises KeyError/TypeError when a field is missing."""
        details = data["details"]
        if not isinstance(details, dict):
            raise TypeError("details must be an object")
        return cls(
            seq=int(data["seq"]),
            at=str(data["at"]),
            actor=str(data["actor"]),
            filing_id=data["filing_id"],
            delivery_id=data["delivery_id"],
            event=str(data["event"]),
            details=details,
            prev_hash=str(data["prev_hash"]),
            hash=str(data["hash"]),
        )


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of walking a chain: rows checked, or the first row that fails."""

    ok: bool
    rows: int
    head: str
    first_bad_seq: int | None = None
    reason: str | None = None
    first_seq: int | None = None
    last_seq: int | None = None
    checkpoint_seq: int | None = None
    warnings: tuple[str, ...] = ()


PRUNED = "audit.pruned"


class RowsUnreadable(Exception):
    """A source of chain rows could not hand over rows it must have (an archive segment
    missing or altered): the verify fails at ``seq`` for ``reason``."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(reason)
        self.seq, self.reason = seq, reason


def covered(gap: tuple[int, int], spans: Sequence[tuple[int, int]]) -> bool:
    """Is every seq of ``gap`` (first, last) inside ``spans`` (sorted, disjoint)?"""
    i = bisect.bisect_right(spans, (gap[0], math.inf)) - 1
    return i >= 0 and spans[i][0] <= gap[0] and gap[1] <= spans[i][1]


def merge_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint, touching ones joined."""
    out: list[tuple[int, int]] = []
    for first, last in sorted(spans):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


class ChainVerifier:
    """Checks rows one at a time, in sequence order, holding O(1) state.

    ``checkpoints`` maps a row's seq to the head hash an authenticated checkpoint
    recorded for it: the row there must carry that hash, and the chain must reach the
    highest one (so a cut-off tail is caught). A chain that does not start at seq 1
    must be accounted for by an ``audit.pruned`` row naming the hash it continues from,
    and with checkpoints that row must be signed off (a checkpoint at or after it).
    """

    def __init__(
        self,
        *,
        checkpoints: Mapping[int, str] | None = None,
        purged: Iterable[tuple[int, int]] = (),
    ) -> None:
        self.checkpoints = dict(checkpoints or {})
        #: seq spans of archive segments purged (``records purge``): their rows are gone
        #: with the segment; a gap inside them is accepted, unlinked, and counted
        self.purged = merge_spans(purged)
        self.purged_rows = 0
        self.count = 0
        self.prev = GENESIS
        self.prev_seq: int | None = None
        self.first: tuple[int, str] | None = None
        self.anchor_seq: int | None = None
        self.failure: VerifyResult | None = None

    def _fail(self, seq: int, reason: str) -> bool:
        self.failure = VerifyResult(
            False, self.count, self.prev, seq, reason, self._first_seq(), self.prev_seq
        )
        return False

    def _first_seq(self) -> int | None:
        return self.first[0] if self.first else None

    def feed(self, row: AuditRow) -> bool:
        """Check one more row; False (and ``failure`` set) at the first that fails."""
        if self.failure is not None:
            return False
        if self.prev_seq is None:
            self.first = (row.seq, row.prev_hash)
            if row.seq > 1 and covered((1, row.seq - 1), self.purged):  # all went with segments
                self.first, self.purged_rows = (1, GENESIS), row.seq - 1
            elif row.seq == 1 and row.prev_hash != GENESIS:
                return self._fail(1, "the first row does not start from the genesis hash")
            self.prev = row.prev_hash
        elif row.seq <= self.prev_seq:
            return self._fail(row.seq, f"row {row.seq} is out of order after {self.prev_seq}")
        elif row.seq != self.prev_seq + 1 and covered(
            (self.prev_seq + 1, row.seq - 1), self.purged
        ):
            self.purged_rows += row.seq - 1 - self.prev_seq
            self.prev = row.prev_hash  # the row before went with its segment: no link to check
        elif row.seq != self.prev_seq + 1:
            missing = self.prev_seq + 1
            return self._fail(
                missing,
                f"row {missing} is missing (the chain jumps from {self.prev_seq} to {row.seq})",
            )
        elif row.prev_hash != self.prev:
            return self._fail(
                row.seq,
                "previous-hash link broken (a row was changed, removed, inserted or "
                "reordered before it)",
            )
        expected = row_hash(
            row.prev_hash,
            seq=row.seq,
            at=row.at,
            actor=row.actor,
            filing_id=row.filing_id,
            delivery_id=row.delivery_id,
            event=row.event,
            details=row.details,
        )
        if expected != row.hash:
            return self._fail(row.seq, "row content does not match its hash")
        signed = self.checkpoints.get(row.seq)
        if signed is not None and signed != row.hash:
            return self._fail(
                row.seq,
                "row hash differs from the signed checkpoint (the chain was rewritten "
                "at or before this row)",
            )
        if row.event == PRUNED and self.first is not None and self._anchors(row):
            self.anchor_seq = row.seq
        self.prev, self.prev_seq, self.count = row.hash, row.seq, self.count + 1
        return True

    def _anchors(self, row: AuditRow) -> bool:
        assert self.first is not None
        first_seq, first_prev = self.first
        d = row.details
        return d.get("removed_to_seq") == first_seq - 1 and d.get("continues_from") == first_prev

    def finish(self) -> VerifyResult:
        """The result once every row was fed."""
        if self.failure is not None:
            return self.failure
        head_seq = self.prev_seq or 0
        top = max(self.checkpoints, default=None)
        warnings: list[str] = []
        if top is not None and top > head_seq:
            return self._finish_fail(
                head_seq + 1,
                f"rows {head_seq + 1}..{top} are missing: a signed checkpoint records {top} "
                f"rows (the tail of the trail was cut off)",
            )
        if self.first is not None and self.first[0] > 1:
            if self.anchor_seq is None:
                return self._finish_fail(
                    self.first[0],
                    f"the chain starts at row {self.first[0]}: rows before it were removed "
                    f"without an audit.pruned row that accounts for them",
                )
            if top is None:
                warnings.append("the audit.pruned row is not signed off by a checkpoint")
            elif top < self.anchor_seq:
                return self._finish_fail(
                    self.anchor_seq,
                    "the audit.pruned row is not signed off by a checkpoint written after it",
                )
        if top is None:
            warnings.append("no authenticated checkpoint: a cut-off tail cannot be detected")
        if self.purged_rows:
            warnings.append(
                f"{self.purged_rows} rows went with archive segments purged after their "
                "retention (records purge): the links across them are not checked"
            )
        return VerifyResult(
            True,
            self.count,
            self.prev,
            first_seq=self._first_seq(),
            last_seq=self.prev_seq,
            checkpoint_seq=top,
            warnings=tuple(warnings),
        )

    def unreadable(self, exc: RowsUnreadable) -> None:
        """The rows' source broke at ``exc.seq``: the first failure, if none came first."""
        if self.failure is None:
            self._fail(exc.seq, exc.reason)

    def _finish_fail(self, seq: int, reason: str) -> VerifyResult:
        self._fail(seq, reason)
        assert self.failure is not None
        return self.failure


def verify_rows(
    rows: Iterable[AuditRow], *, checkpoints: Mapping[int, str] | None = None
) -> VerifyResult:
    """Walk rows in sequence order; stops at the first row that does not verify."""
    verifier = ChainVerifier(checkpoints=checkpoints)
    for row in rows:
        if not verifier.feed(row):
            break
    return verifier.finish()
