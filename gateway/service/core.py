"""What every part of the service holds: the store, config, clock and adapters, the
hooks the server wires in (new work, dispatcher and outage status, sources' health,
the callback URL check), the ack service; and the values intake takes and gives back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway import config, metrics, models
from gateway.clock import Clock
from gateway.delivery import acks, ssrf
from gateway.store.base import Store

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class Submitted:
    """A filing as the submitter gets it back; ``created`` is False for a duplicate."""

    filing: models.FilingView
    created: bool


@dataclass(frozen=True, slots=True)
class Inbound:
    """One event to submit, with what came beside it (header key, source)."""

    event: models.FilingEvent
    idempotency_header: str | None = None
    source: str = "api"
    #: the original event's id (CloudEvent id, message id, file name), for provenance
    source_event_id: str | None = None


class ServiceCore:
    """The state the service's parts share; ``Service`` is them together."""

    def __init__(
        self,
        *,
        store: Store,
        cfg: config.Config,
        clock: Clock,
        adapters: Mapping[str, Any] | None = None,
        on_new_work: Callable[[], None] | None = None,
        metrics: metrics.Metrics | None = None,
        check_callback: Callable[[str], Awaitable[Any]] | None = None,
    ) -> None:
        self.store = store
        self.cfg = cfg
        self.clock = clock
        self.adapters = dict(adapters or {})
        self._on_new_work = on_new_work or (lambda: None)
        self.metrics = metrics
        self.shutting_down = False
        #: filings between intake and their commit (bounded by [gateway] max_pending_intake)
        self.pending_intake = 0
        self.dispatcher_running: Callable[[], bool] = lambda: True
        #: breaker, gate and pacing per adapter (set by the server from the dispatcher)
        self.outage_status: Callable[[], dict[str, dict[str, Any]]] = dict
        #: inbound sources' health for /readyz (reported, never makes the gateway unready)
        self.source_status: Callable[[], dict[str, Any]] = dict
        #: refuses (422) a callback_url the SSRF guard or the secrets config refuses
        self.check_callback = (
            check_callback or ssrf.HostPolicy(cfg.callbacks.allowed_hosts).check_url
        )
        self.acks = acks.AckService(
            store=store, cfg=cfg, clock=clock, on_new_work=self._on_new_work
        )
