"""Checking an audit export file offline, line by line in constant memory: each row's
hash, sequence and links, the header's signed checkpoint, and the trailer's digest and
HMAC seal (see ``gateway.audit.export`` for the layout and what each check proves)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway.audit import chain as audit
from gateway.audit import checkpoints
from gateway.audit.export import FORMAT, seal_digest


@dataclass(frozen=True, slots=True)
class ExportResult:
    """The outcome of verifying an export file."""

    ok: bool
    rows: int
    complete: bool
    reason: str | None = None
    first_bad_seq: int | None = None
    line: int | None = None
    sealed: bool = False
    checkpoint_seq: int | None = None
    warnings: tuple[str, ...] = ()


class _Fail(Exception):
    def __init__(self, reason: str, *, line: int, seq: int | None = None) -> None:
        super().__init__(reason)
        self.reason, self.line, self.seq = reason, line, seq


def verify_export(lines: Iterable[str], *, key: bytes | None) -> ExportResult:
    """Check an export line by line (constant memory); stops at the first failure."""
    state = _ExportCheck(key)
    try:
        for number, text in enumerate(lines, start=1):
            state.line(number, text)
        return state.finish()
    except _Fail as exc:
        return ExportResult(
            False,
            state.rows,
            state.complete,
            exc.reason,
            exc.seq,
            exc.line,
            checkpoint_seq=state.checkpoint_seq,
        )


class _ExportCheck:
    def __init__(self, key: bytes | None) -> None:
        self.key = key
        self.digest = hashlib.sha256()
        self.header: dict[str, Any] | None = None
        self.trailer: dict[str, Any] | None = None
        self.complete = False
        self.rows = 0
        self.chain: audit.ChainVerifier | None = None
        self.prev: audit.AuditRow | None = None
        self.checkpoint_seq: int | None = None
        self.checkpoint_head: str | None = None
        self.warnings: list[str] = []
        self.last_line = 0

    def line(self, number: int, text: str) -> None:
        self.last_line = number
        if self.trailer is not None:
            raise _Fail("a line follows the trailer", line=number)
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _Fail(f"line {number} is not JSON: {exc}", line=number) from exc
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind == "trailer":
            self.trailer = obj
            return
        self.digest.update(text.encode() if text.endswith("\n") else (text + "\n").encode())
        if self.header is None:
            self._header(obj, number)
        elif kind == "row":
            self._row(obj, number)
        else:
            raise _Fail(f"line {number}: unexpected line type {kind!r}", line=number)

    def _header(self, obj: Any, number: int) -> None:
        if not isinstance(obj, dict) or obj.get("type") != "header" or obj.get("format") != FORMAT:
            raise _Fail(f"line {number} is not a {FORMAT} header", line=number)
        self.header = obj
        self.complete = bool(obj.get("complete"))
        signed: dict[int, str] = {}
        cp = obj.get("checkpoint")
        if cp is not None and self.key is not None:
            try:
                checkpoint = checkpoints.authenticate(cp, self.key)
            except ValueError as exc:
                raise _Fail(f"the export's checkpoint: {exc}", line=number) from exc
            self.checkpoint_seq, self.checkpoint_head = checkpoint.seq, checkpoint.head
            signed[checkpoint.seq] = checkpoint.head
        elif cp is not None:
            self.warnings.append("no HMAC key: the export's checkpoint was not authenticated")
        else:
            self.warnings.append("the export carries no checkpoint")
        if self.complete:
            self.chain = audit.ChainVerifier(checkpoints=signed)

    def _row(self, obj: dict[str, Any], number: int) -> None:
        try:
            row = audit.AuditRow.from_dict(obj)
        except (KeyError, TypeError, ValueError) as exc:
            raise _Fail(f"line {number}: not an audit row ({exc})", line=number) from exc
        self.rows += 1
        if self.chain is not None:
            if not self.chain.feed(row):
                failure = self.chain.finish()
                raise _Fail(
                    f"row {failure.first_bad_seq}: {failure.reason}",
                    line=number,
                    seq=failure.first_bad_seq,
                )
            return
        self._filtered_row(row, number)

    def _filtered_row(self, row: audit.AuditRow, number: int) -> None:
        prev = self.prev
        if prev is not None and row.seq <= prev.seq:
            raise _Fail(f"row {row.seq} is out of order after {prev.seq}", line=number, seq=row.seq)
        if prev is not None and row.seq == prev.seq + 1 and row.prev_hash != prev.hash:
            raise _Fail(
                f"row {row.seq}: previous-hash link to row {prev.seq} broken",
                line=number,
                seq=row.seq,
            )
        expected = audit.row_hash(
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
            raise _Fail(f"row {row.seq}: content does not match its hash", line=number, seq=row.seq)
        if row.seq == self.checkpoint_seq and row.hash != self.checkpoint_head:
            raise _Fail(
                f"row {row.seq}: hash differs from the signed checkpoint", line=number, seq=row.seq
            )
        self.prev = row

    def finish(self) -> ExportResult:
        if self.header is None:
            raise _Fail("the file is empty: no header line", line=0)
        if self.trailer is None:
            raise _Fail(
                "the export is incomplete: no trailer line (cut short?)", line=self.last_line
            )
        if self.trailer.get("rows") != self.rows:
            raise _Fail(
                f"the trailer counts {self.trailer.get('rows')} rows; the file holds {self.rows}",
                line=self.last_line,
            )
        digest = self.digest.hexdigest()
        if self.trailer.get("sha256") != digest:
            raise _Fail("the file's digest does not match its trailer", line=self.last_line)
        sealed = False
        seal = self.trailer.get("hmac")
        if self.key is not None and seal is not None:
            if not isinstance(seal, str) or not hmac.compare_digest(
                seal, seal_digest(self.key, digest)
            ):
                raise _Fail(
                    "the trailer's HMAC does not match: the file was altered (or another key)",
                    line=self.last_line,
                )
            sealed = True
        elif seal is not None:
            self.warnings.append("no HMAC key: the file's seal was not checked")
        else:
            self.warnings.append("the export is not sealed (exported without a key)")
        if self.chain is not None:
            result = self.chain.finish()
            if not result.ok:
                raise _Fail(
                    f"row {result.first_bad_seq}: {result.reason}",
                    line=self.last_line,
                    seq=result.first_bad_seq,
                )
            head = self.header.get("head_seq")
            if head != (result.last_seq or 0):
                raise _Fail(
                    f"the export ends at row {result.last_seq}; its header says {head}",
                    line=self.last_line,
                    seq=(result.last_seq or 0) + 1,
                )
            self.warnings.extend(
                w for w in result.warnings if not w.startswith("no authenticated checkpoint")
            )
        return ExportResult(
            True,
            self.rows,
            self.complete,
            sealed=sealed,
            checkpoint_seq=self.checkpoint_seq,
            warnings=tuple(self.warnings),
        )
