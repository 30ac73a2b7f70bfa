"""What operators look at, in one shape for ``/metrics``, ``/v1/overview``, the dashboard and
``edi-gateway top``: the queue by state and adapter, each adapter's health, breaker, gate
and rate, the calendars' current and next windows, announced outages, at-risk filings.

The store is asked at most once per ``ttl_s`` (``[monitoring] queue_cache``) however often
Prometheus scrapes or pages refresh: the queue figures are a GROUP BY over an index, cheap
but not free on a table of millions, so they are cached rather than counted per request.
Every process reads the same shared store, so their queue figures agree.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio
import structlog

from gateway import config, models, service, values
from gateway.clock import Clock
from gateway.store import base

log = structlog.get_logger("gateway.monitoring")

#: hook for the acks work (issue: ack correlation): returns {"overdue": n, "unmatched": n}
AckFigures = Callable[[], Awaitable[Mapping[str, int]]]

#: an adapter's check() may take this long before it is reported as not answering
CHECK_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The shared figures at one moment, as read from the store."""

    stats: values.QueueStats
    taken_at: datetime
    health: dict[str, dict[str, Any]]
    acks: Mapping[str, int] | None = None
    #: unsettled filings by filer code, then status (the queue by filer, issue 22)
    filers: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


class Monitor:
    """Cached figures of the shared queue plus this process's adapter states."""

    def __init__(
        self,
        *,
        store: base.Store,
        cfg: config.Config,
        clock: Clock,
        adapters: Mapping[str, Any],
        status: Callable[[], dict[str, dict[str, Any]]],
        ttl_s: float,
        ack_figures: AckFigures | None = None,
    ) -> None:
        self.store = store
        self.cfg = cfg
        self.clock = clock
        self.adapters = dict(adapters)
        self.status = status
        self.ttl_s = ttl_s
        #: set by the acks work to export edigw_acks_overdue / edigw_acks_unmatched
        self.ack_figures = ack_figures
        self._snapshot: Snapshot | None = None
        self._lock = anyio.Lock()

    async def snapshot(self) -> Snapshot:
        """The queue figures, from the store at most once per ``ttl_s``."""
        if self._fresh():
            assert self._snapshot is not None
            return self._snapshot
        async with self._lock:
            if not self._fresh():
                stats = await self.store.queue_stats()
                filers = await self.store.filer_queue()
                acks = None if self.ack_figures is None else await self.ack_figures()
                health = await self._health()
                self._snapshot = Snapshot(stats, self.clock.now(), health, acks, filers)
        assert self._snapshot is not None
        return self._snapshot

    def _fresh(self) -> bool:
        snap = self._snapshot
        return snap is not None and (self.clock.now() - snap.taken_at).total_seconds() < self.ttl_s

    async def _health(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, adapter in self.adapters.items():
            try:
                with anyio.fail_after(CHECK_TIMEOUT_S):
                    h = await adapter.check()
                out[name] = {"ok": h.ok, "detail": h.detail}
            except TimeoutError:
                out[name] = {"ok": False, "detail": f"check() took over {CHECK_TIMEOUT_S}s"}
            except Exception as exc:  # a broken check() is reported, not raised
                out[name] = {"ok": False, "detail": f"check failed: {exc!r}"}
        return out

    async def overview(self, *, upcoming: int = 2, filer: str | None = None) -> dict[str, Any]:
        """Everything ``top`` and the dashboard show, as JSON-ready data; ``filer``: the
        queue by filer holds that filer code only."""
        snap = await self.snapshot()
        now = self.clock.now()
        status = self.status()
        totals: dict[str, int] = dict.fromkeys((s.value for s in models.DeliveryState), 0)
        adapters = []
        for name in sorted(set(self.cfg.adapters) | set(snap.stats.counts)):
            counts = snap.stats.counts.get(name, {})
            for state, n in counts.items():
                totals[state] = totals.get(state, 0) + n
            first = snap.stats.oldest_waiting.get(name)
            st = status.get(name, {})
            section = self.cfg.adapters.get(name)
            adapters.append(
                {
                    "name": name,
                    "type": None if section is None else (section.type or section.factory),
                    "counts": counts,
                    "waiting": sum(counts.get(s, 0) for s in WAITING),
                    "oldest_waiting_age_s": (
                        None if first is None else round((now - first).total_seconds(), 3)
                    ),
                    "health": snap.health.get(name),
                    "breaker": st.get("breaker"),
                    "gate": st.get("gate"),
                    "rate_limit": st.get("rate_limit"),
                    "burst": st.get("burst"),
                    "calendars": st.get("calendars", []),
                }
            )
        calendars = service.calendar_windows(self.cfg, upcoming, now)
        for cal in calendars.values():
            for w in cal["windows"]:
                start, end = (datetime.fromisoformat(w[k]) for k in ("start", "end"))
                w["current"] = start <= now < end
        announced = await self.store.list_outages(now=now)
        return {
            "generated_at": models.utc_iso(now),
            "snapshot_at": models.utc_iso(snap.taken_at),
            "totals": totals,
            "adapters": adapters,
            "at_risk": snap.stats.at_risk,
            "ack_conflicts": snap.stats.ack_conflicts,
            "acks": None if snap.acks is None else dict(snap.acks),
            "calendars": calendars,
            "outages": [o.model_dump(mode="json") for o in announced],
            "filers": by_filer(snap.filers, filer),
        }


#: the queue by filer lists at most this many filer codes (the most waiting first)
TOP_FILERS = 100


def by_filer(queue: Mapping[str, Mapping[str, int]], only: str | None) -> list[dict[str, Any]]:
    """The queue by filer code: each code's unsettled filings by status and their sum, the
    most waiting first (``only``: that code alone, zeros when it has nothing waiting)."""
    codes = [only] if only is not None else list(queue)
    counts = {c: dict(queue.get(c, {})) for c in codes}
    order = sorted(codes, key=lambda c: (-sum(counts[c].values()), c))[:TOP_FILERS]
    return [
        {"filer_code": c, "counts": counts[c], "waiting": sum(counts[c].values())} for c in order
    ]


#: states in which a delivery still waits to be sent
WAITING = ("pending", "in_flight", "waiting_retry", "deferred")
