"""Audit exports: JSON Lines that carry what is needed to verify them offline.

Layout, one JSON object per line::

    {"type": "header", "format": "edi-gateway-audit-export/1", "filters": {…},
     "complete": true|false, "head_seq": N, "checkpoint": {signed checkpoint} | null, …}
    {"type": "row", "seq": …, "at": …, …, "prev_hash": …, "hash": …}      (one per row)
    {"type": "trailer", "rows": N, "sha256": "<digest of every line above>",
     "hmac": "<HMAC-SHA256 of that digest>" | null}

What ``verify --file`` proves:

- every export: each row matches its own hash, rows are in sequence order, consecutive
  rows (seq n, n+1) are linked by their hashes, and — with the HMAC key — the whole
  file (header, every line, their order and number) is exactly what the gateway wrote;
- a complete export (no filters) additionally: the chain is unbroken from row 1 (or
  from an ``audit.pruned`` anchor) to the end, and — with the key — reaches the signed
  checkpoint, so nothing was cut off the tail before the export was taken;
- a filtered export can NOT prove, on its own, that rows outside the filter are intact,
  nor (without the key) that no matching row was left out: the rows it holds carry
  their chain hashes, so compare them with a verified trail (``audit verify`` on the
  database, or a complete export) for that.

Checking an export (``verify --file``) lives in ``gateway.audit.export_check``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from gateway.audit import chain as audit

FORMAT = "edi-gateway-audit-export/1"


def iso(when: datetime) -> str:
    """The audit trail's time spelling (sorts as text): ``2026-01-06T12:00:00.000000Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class ExportFilter:
    """Which rows an export holds; every filter optional, combined with AND."""

    since: datetime | None = None
    until: datetime | None = None
    filing_ids: frozenset[str] | None = None
    adapter: str | None = None
    described: Mapping[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.described

    def matches(self, row: audit.AuditRow) -> bool:
        if self.since is not None and row.at < iso(self.since):
            return False
        if self.until is not None and row.at >= iso(self.until):
            return False
        if self.filing_ids is not None and row.filing_id not in self.filing_ids:
            return False
        if self.adapter is not None:
            d = row.details
            listed = d.get("adapters")
            adapters = listed if isinstance(listed, list) else []
            if d.get("adapter") != self.adapter and self.adapter not in adapters:
                return False
        return True


class ExportWriter:
    """Writes the header, rows and the sealing trailer to a text stream."""

    def __init__(self, out: TextIO, *, key: bytes | None) -> None:
        self.out = out
        self.key = key
        self.rows = 0
        self._digest = hashlib.sha256()

    def _line(self, obj: Mapping[str, Any]) -> None:
        line = json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"
        self._digest.update(line.encode())
        self.out.write(line)

    def header(
        self,
        *,
        flt: ExportFilter,
        head_seq: int,
        checkpoint: Mapping[str, Any] | None,
        exported_at: datetime,
    ) -> None:
        self._line(
            {
                "type": "header",
                "format": FORMAT,
                "exported_at": iso(exported_at),
                "filters": dict(flt.described),
                "complete": flt.complete,
                "head_seq": head_seq,
                "checkpoint": checkpoint,
            }
        )

    def row(self, row: audit.AuditRow) -> None:
        self._line({"type": "row", **row.as_dict()})
        self.rows += 1

    def trailer(self) -> None:
        digest = self._digest.hexdigest()
        seal = None if self.key is None else seal_digest(self.key, digest)
        line = {"type": "trailer", "rows": self.rows, "sha256": digest, "hmac": seal}
        self.out.write(json.dumps(line, separators=(",", ":")) + "\n")


def seal_digest(key: bytes, digest: str) -> str:
    return hmac.new(key, f"{FORMAT}:{digest}".encode(), hashlib.sha256).hexdigest()
