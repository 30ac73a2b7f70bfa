"""A consumer's health and counters, as ``/readyz`` reports them under ``sources``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.inbound.intake import Outcome


@dataclass
class SourceStatus:
    """Mutable health of one running source; ``degraded`` never makes the gateway unready."""

    kind: str
    target: str
    state: str = "starting"  # starting | ok | degraded | stopped
    detail: str = ""
    counts: dict[str, int] = field(default_factory=lambda: {o.value: 0 for o in Outcome})

    def ok(self, detail: str = "") -> None:
        self.state, self.detail = "ok", detail

    def degraded(self, detail: str) -> None:
        self.state, self.detail = "degraded", detail

    def count(self, outcome: Outcome) -> None:
        self.counts[outcome.value] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "status": self.state,
            "detail": self.detail,
            **self.counts,
        }
