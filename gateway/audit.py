"""The append-only, hash-chained audit trail: row hashing and chain verification.

Each row's hash is SHA-256 over the canonical JSON of the row (sequence, time, actor,
filing and delivery ids, event, details) followed by the previous row's hash, so a
changed, removed, reordered or inserted row breaks every hash after it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


def canonical(value: Any) -> str:
    """The one JSON spelling used for hashing: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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
    body = canonical(
        {
            "seq": seq,
            "at": at,
            "actor": actor,
            "filing_id": filing_id,
            "delivery_id": delivery_id,
            "event": event,
            "details": details,
        }
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


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    rows: int
    head: str
    first_bad_seq: int | None = None
    reason: str | None = None


def verify_rows(rows: Iterable[AuditRow], *, start_hash: str = GENESIS) -> VerifyResult:
    """Walk rows in sequence order; stops at the first row that does not verify."""
    prev = start_hash
    prev_seq: int | None = None
    count = 0
    for row in rows:
        if prev_seq is not None and row.seq != prev_seq + 1:
            return VerifyResult(False, count, prev, row.seq, f"sequence jumps from {prev_seq}")
        if row.prev_hash != prev:
            return VerifyResult(False, count, prev, row.seq, "previous-hash link broken")
        expected = row_hash(
            prev,
            seq=row.seq,
            at=row.at,
            actor=row.actor,
            filing_id=row.filing_id,
            delivery_id=row.delivery_id,
            event=row.event,
            details=row.details,
        )
        if expected != row.hash:
            return VerifyResult(False, count, prev, row.seq, "row content does not match its hash")
        prev, prev_seq, count = row.hash, row.seq, count + 1
    return VerifyResult(True, count, prev)
