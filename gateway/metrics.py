"""Prometheus metrics of one gateway process, in a registry of its own.

Two kinds of figures:

* **process figures** — counters and histograms this process updates as it works
  (filings accepted, send attempts and outcomes, send duration, accepted→delivered
  latency, store errors, operator actions) plus the standard process/GC collectors.
  With several processes each exposes its own; Prometheus sums them.
* **shared figures** — gauges read from the shared store (deliveries by state and
  adapter, the oldest waiting delivery, at-risk filings) through a cached
  ``monitoring.Snapshot``; every process reports the same numbers.

No global registry, no singletons: ``Metrics`` is built per gateway and handed to the
parts that report into it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway import errors, models, values

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: send durations: 5 ms … 2 min
SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
#: accepted → delivered: 10 ms … 1 day (retries and outages stretch it)
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400)
BREAKER_STATES = ("closed", "open", "half_open")
GATE_STATES = ("open", "probe", "closed")
#: the filer label of every code not in ``[metrics] filer_labels`` (bounded cardinality)
OTHER = "other"


class QueueCollector(Collector):
    """Gauges of the shared queue, from the last snapshot handed to ``update``."""

    def __init__(self, adapters: list[str], label: Callable[[str], str] = str) -> None:
        self.adapters = adapters
        #: a filer code's label (``Metrics.filer_label``: bounded)
        self.label = label
        self._filers: Mapping[str, Mapping[str, int]] = {}
        self._stats: values.QueueStats | None = None
        self._status: Mapping[str, Mapping[str, Any]] = {}
        self._acks: Mapping[str, int] | None = None
        self._now: datetime | None = None
        self._taken_at: datetime | None = None

    def update(
        self,
        stats: values.QueueStats,
        *,
        taken_at: datetime,
        now: datetime,
        status: Mapping[str, Mapping[str, Any]],
        acks: Mapping[str, int] | None = None,
        filers: Mapping[str, Mapping[str, int]] | None = None,
    ) -> None:
        self._stats, self._taken_at, self._now = stats, taken_at, now
        self._status, self._acks = status, acks
        self._filers = filers or {}

    def collect(self) -> Iterator[Metric]:
        stats, now = self._stats, self._now
        if stats is None or now is None or self._taken_at is None:
            return
        names = sorted(set(self.adapters) | set(stats.counts))
        deliveries = GaugeMetricFamily(
            "edigw_deliveries",
            "Deliveries by adapter and state (shared store)",
            labels=["adapter", "state"],
        )
        for adapter in names:
            counts = stats.counts.get(adapter, {})
            for state in models.DeliveryState:
                deliveries.add_metric([adapter, state.value], counts.get(state.value, 0))
        yield deliveries
        oldest = GaugeMetricFamily(
            "edigw_oldest_waiting_delivery_age_seconds",
            "Age of the oldest delivery still waiting to be sent (0: none)",
            labels=["adapter"],
        )
        for adapter in names:
            first = stats.oldest_waiting.get(adapter)
            oldest.add_metric([adapter], 0.0 if first is None else (now - first).total_seconds())
        yield oldest
        yield GaugeMetricFamily(
            "edigw_filings_at_risk",
            "Unsettled filings whose due_by is near or inside a known outage",
            value=stats.at_risk,
        )
        yield GaugeMetricFamily(
            "edigw_ack_conflicts",
            "Deliveries whose acknowledgements conflict (e.g. a rejection after an "
            "acceptance): stored, changed nothing, waiting for a person",
            value=stats.ack_conflicts,
        )
        yield GaugeMetricFamily(
            "edigw_queue_snapshot_age_seconds",
            "How old the cached queue figures are",
            value=(now - self._taken_at).total_seconds(),
        )
        yield from self._adapter_states()
        yield self._by_filer()
        if self._acks is not None:  # the acks branch plugs in via Monitor(ack_figures=…)
            yield GaugeMetricFamily(
                "edigw_acks_overdue", "Deliveries whose ack is overdue", value=self._acks["overdue"]
            )
            yield GaugeMetricFamily(
                "edigw_acks_unmatched",
                "Acks that match no delivery",
                value=self._acks["unmatched"],
            )

    def _by_filer(self) -> Metric:
        """Unsettled filings by filer label and status (the queue by filer, issue 22)."""
        summed: dict[tuple[str, str], int] = {}
        for code, counts in self._filers.items():
            for status, n in counts.items():
                key = (self.label(code), status)
                summed[key] = summed.get(key, 0) + n
        gauge = GaugeMetricFamily(
            "edigw_filer_filings_waiting",
            "Filings accepted and not yet settled, by filer code ([metrics] filer_labels; "
            "every other code is `other`) and status (shared store)",
            labels=["filer", "status"],
        )
        for (filer, status), n in sorted(summed.items()):
            gauge.add_metric([filer, status], n)
        return gauge

    def _adapter_states(self) -> Iterator[Metric]:
        brk = GaugeMetricFamily(
            "edigw_adapter_breaker_state",
            "Circuit breaker state of each adapter in this process (1 = current)",
            labels=["adapter", "state"],
        )
        gate = GaugeMetricFamily(
            "edigw_adapter_gate_state",
            "Outage gate of each adapter: open, probe (window) or closed (1 = current)",
            labels=["adapter", "state"],
        )
        outage = GaugeMetricFamily(
            "edigw_adapter_in_outage",
            "1 while an adapter may not send (hold window, announced outage, open breaker)",
            labels=["adapter"],
        )
        paused = GaugeMetricFamily(
            "edigw_paused",
            "1 per pause in force: an adapter's filing type, or all its types (`*`)",
            labels=["adapter", "filing_type"],
        )
        for adapter in self.adapters:
            st = self._status.get(adapter, {})
            b = (st.get("breaker") or {}).get("state", "closed")
            g = (st.get("gate") or {}).get("state", "open")
            for s in BREAKER_STATES:
                brk.add_metric([adapter, s], 1.0 if s == b else 0.0)
            for s in GATE_STATES:
                gate.add_metric([adapter, s], 1.0 if s == g else 0.0)
            outage.add_metric([adapter], 1.0 if g == "closed" or b == "open" else 0.0)
            for p in st.get("paused", ()):  # issue 21: one series per pause in force
                paused.add_metric([adapter, p.get("filing_type") or "*"], 1.0)
        yield brk
        yield gate
        yield outage
        yield paused


class Metrics:
    """The metrics of one gateway process."""

    def __init__(self, *, adapters: list[str], process: bool = True) -> None:
        self.registry = CollectorRegistry()
        if process:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        r = self.registry
        self.filings_accepted = Counter(
            "edigw_filings_accepted",
            "Filings accepted by this process",
            ["filing_type", "environment"],
            registry=r,
        )
        self.attempts = Counter(
            "edigw_delivery_attempts",
            "Send attempts by adapter and outcome (delivered, retry, deferred, dead)",
            ["adapter", "outcome"],
            registry=r,
        )
        self.send_seconds = Histogram(
            "edigw_adapter_send_seconds",
            "Duration of adapter.send",
            ["adapter"],
            buckets=SEND_BUCKETS,
            registry=r,
        )
        self.delivery_latency = Histogram(
            "edigw_delivery_latency_seconds",
            "Accepted → delivered, per delivery",
            ["adapter"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.store_errors = Counter(
            "edigw_store_errors", "Store operations that failed", ["operation"], registry=r
        )
        self.operator_actions = Counter(
            "edigw_operator_actions",
            "Deliveries changed by operators (retry, cancel)",
            ["action"],
            registry=r,
        )
        self.filer_accepted = Counter(
            "edigw_filer_filings_accepted",
            "Filings accepted by this process per filer code ([metrics] filer_labels; "
            "every other code is `other`)",
            ["filer"],
            registry=r,
        )
        self.quota_refusals = Counter(
            "edigw_quota_refusals",
            "Filings refused 429 by an intake quota, per limit and filer code (as labelled)",
            ["filer", "limit"],
            registry=r,
        )
        self.rate_limited = Counter(
            "edigw_filer_delivery_rate_limited",
            "Times a filer code's delivery rate held it back on an adapter (its bucket "
            "emptied; its deliveries wait for the refill), by filer code (as labelled)",
            ["filer"],
            registry=r,
        )
        self.filer_outcomes = Counter(
            "edigw_filer_delivery_attempts",
            "Send attempts by filer code (as labelled) and outcome (delivered, retry, "
            "deferred, dead)",
            ["filer", "outcome"],
            registry=r,
        )
        self.filer_latency = Histogram(
            "edigw_filer_delivery_latency_seconds",
            "Accepted → delivered, per delivery, by filer code (as labelled): fair delivery",
            ["filer"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._filers: frozenset[str] = frozenset()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        #: the children one ``accepted`` or ``outcome`` call updates, by its labels (bounded:
        #: a filer code is keyed by its label): one look-up per call, not one per child
        self._bundles: dict[tuple[Any, ...], Any] = {}
        self.queue = QueueCollector(adapters, self.filer_label)
        r.register(self.queue)
        for adapter in adapters:  # series exist from the start, at 0
            self.send_seconds.labels(adapter)
            self.delivery_latency.labels(adapter)
            for outcome in ("delivered", "retry", "deferred", "dead"):
                self.attempts.labels(adapter, outcome)

    # --- reporting ---------------------------------------------------------------------

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: labels() takes a lock and builds a key on
        every call, and these run once or twice per filing."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def label_filers(self, codes: Sequence[str]) -> None:
        """The filer codes labelled on their own (a bounded, configured list); their
        series exist from now, at 0, with ``other``'s."""
        self._filers = frozenset(codes)
        for code in [*codes, OTHER]:
            self.filer_accepted.labels(code)
            self.filer_latency.labels(code)
            self.rate_limited.labels(code)
            for outcome in ("delivered", "retry", "deferred", "dead"):
                self.filer_outcomes.labels(code, outcome)

    def filer_label(self, filer_code: str) -> str:
        """The label of a filer code: itself when configured, else ``other``."""
        return filer_code if filer_code in self._filers else OTHER

    def accepted(self, view: models.FilingView) -> None:
        key = (view.filing_type, view.environment, self.filer_label(view.filer_code))
        counters = self._bundles.get(key)
        if counters is None:
            counters = self._bundles[key] = (
                self._child(self.filings_accepted, key[0].value, key[1].value),
                self._child(self.filer_accepted, key[2]),
            )
        for counter in counters:
            counter.inc()

    def quota_refused(self, limit: str, filer_code: str) -> None:
        self._child(self.quota_refusals, self.filer_label(filer_code), limit).inc()

    def filer_rate_limited(self, filer_code: str) -> None:
        self._child(self.rate_limited, self.filer_label(filer_code)).inc()

    def sent(self, adapter: str, seconds: float) -> None:
        self._child(self.send_seconds, adapter).observe(seconds)

    def outcome(
        self,
        adapter: str,
        outcome: str,
        *,
        latency_s: float | None = None,
        filer_code: str | None = None,
    ) -> None:
        filer = None if filer_code is None else self.filer_label(filer_code)
        key = (adapter, outcome, filer, latency_s is not None)
        bundle = self._bundles.get(key)
        if bundle is None:
            bundle = self._bundles[key] = self._outcome_children(*key)
        counters, histograms = bundle
        for counter in counters:
            counter.inc()
        if latency_s is not None:
            seconds = max(0.0, latency_s)
            for histogram in histograms:
                histogram.observe(seconds)

    def _outcome_children(
        self, adapter: str, outcome: str, filer: str | None, timed: bool
    ) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """The counters and the histograms one ``outcome`` call updates."""
        counters = [self._child(self.attempts, adapter, outcome)]
        histograms = [self._child(self.delivery_latency, adapter)] if timed else []
        if filer is not None:
            counters.append(self._child(self.filer_outcomes, filer, outcome))
            if timed:
                histograms.append(self._child(self.filer_latency, filer))
        return tuple(counters), tuple(histograms)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class InstrumentedStore:
    """A store that counts its ``StoreError``s by operation; everything else passes through."""

    def __init__(self, inner: Any, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    @property
    def inner(self) -> Any:
        return self._inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        counter = self._metrics.store_errors

        async def counted(*args: Any, **kwargs: Any) -> Any:
            try:
                return await attr(*args, **kwargs)
            except errors.StoreError:
                counter.labels(name).inc()
                raise

        setattr(self, name, counted)  # built once: later lookups skip __getattr__
        return counted
