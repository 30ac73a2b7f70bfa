"""Fair delivery between filer codes (issue 22): start-time fair queuing, weighted. Pure.

Within an adapter, each delivery gets a **virtual start time** (``deliveries.vtime``) when
it is accepted: ``max(V, F)``, where ``F`` is its filer code's virtual finish on that
adapter, which then advances by ``1 / weight``. The claim walks an index on
``(adapter, vtime, seq)`` and stops at its LIMIT, so serving in tag order interleaves the
filers in proportion to their weights, whatever their backlogs: a filer with 50,000
waiting has tags far ahead, a filer posting now gets tags at ``V``, the front. Nothing is
ranked at claim time, nothing is counted per filer: the claim's cost is the old one.

Deadlines come first: a delivery due within ``[deadlines] at_risk_margin`` is claimed
earliest ``due_by`` first, before the fair walk (a second index walk, on the old
``deliveries_claim`` index, range-bounded by the horizon). Per-key order, leases, fencing,
pauses and probes are untouched: the tags only choose among the heads the claim already
allows.

**What V is, with several processes and restarts.** ``V`` is derived, never kept in a hot
row: at accept it is the smallest tag still waiting on the adapter (the head of the fair
index: one index probe), and when nothing waits, the largest finish of any filer on the
adapter (everything up to it was served). Each filer's finish is a row of
``fair_finish`` (adapter, filer code), raised with ``greatest`` by each accept just before
its audit chain lock, so the row's lock is held about as long as the chain's, which every
transaction takes anyway. Both are in the database, so a restart or another process
continues the same clock. Two processes accepting for one filer at the same instant may
read the same finish and give two deliveries one tag (served by ``seq``): a tie, never a
reordering of a key. We chose this over a per-adapter clock row advanced by each claim
(every claim of every process would queue on that row) and over ranking the backlog per
claim (the cost the issue forbids; Hatchet's tenant-matching queries are the warning).

Known limit: a delivery waiting long for a retry (or deferred) with an old tag holds ``V``
back; a filer that starts posting meanwhile gets tags from that ``V``, ahead of a running
backlog by up to the gap: it is served first for that while, then interleaved again.

A filer with a delivery rate (``[quotas] delivery_rate``, ``rules.pacing.FilerRates``) is
left out of the claim while its bucket is empty; the walk steps over its heads. When the
others are served faster than its rate while it has a backlog, their tags run ahead of
its waiting ones, so the heads stepped over grow up to its backlog (about 4 µs each).

The weights (``[fairness] weights``, default 1; read at start-up) are written to
``fair_weights`` by the dispatcher when it starts, so every process tags by the same
weights (the last process started wins if their files differ).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

#: virtual time units of one delivery of a weight-1 filer (integers index and compare
#: exactly on both databases)
UNIT = 1_000_000
#: the largest weight (a step of UNIT // MAX_WEIGHT = 1,000 units stays exact)
MAX_WEIGHT = 1000


def step(weight: int | None) -> int:
    """How far one delivery advances its filer's finish: ``UNIT / weight``."""
    return UNIT // min(MAX_WEIGHT, max(1, weight or 1))


class Tagger:
    """Tags one accept's deliveries from the state the store read for their
    (adapter, filer code) pairs: rows of (adapter, filer code, the adapter's clock V, the
    filer's finish, the filer's weight), NULLs as None."""

    def __init__(self, state: Iterable[Sequence[Any]]) -> None:
        self.clock: dict[str, int] = {}
        self.finish: dict[tuple[str, str], int] = {}
        self.weight: dict[str, int | None] = {}
        for adapter, filer, clock, finish, weight in state:
            self.clock[adapter] = int(clock or 0)
            if finish is not None:
                self.finish[adapter, filer] = int(finish)
            self.weight[filer] = weight
        self.touched: dict[tuple[str, str], int] = {}

    def tag(self, adapter: str, filer: str) -> int:
        """The next delivery's start tag; the filer's finish moves past it."""
        start = max(self.clock.get(adapter, 0), self.finish.get((adapter, filer), 0))
        end = start + step(self.weight.get(filer))
        self.finish[adapter, filer] = self.touched[adapter, filer] = end
        return start

    def finishes(self) -> list[tuple[str, str, int]]:
        """The finishes to store, in key order (concurrent accepts lock rows alike)."""
        return [(a, f, end) for (a, f), end in sorted(self.touched.items())]
