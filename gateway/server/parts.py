"""What a running gateway is made of: ``Parts`` builds the store (wrapped to count its
errors), the adapters, dispatcher, callback sender, service, ack runner, inbound intake
and consumers, monitor and the aiohttp app, and wires them to one another. Nothing here
starts or stops; ``lifecycle.Gateway`` does."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web

from gateway import config, errors, metrics, monitoring, registry
from gateway.api import app as api_app
from gateway.api import auth
from gateway.audit import redact
from gateway.clock import Clock, SystemClock
from gateway.delivery import acks, callbacks
from gateway.delivery.dispatcher import Dispatcher
from gateway.inbound import consumers
from gateway.inbound.intake import Intake
from gateway.inbound.normalizers import Sources
from gateway.server import trail
from gateway.server.workers import WORKER_ENV, Workers
from gateway.service import Service, mover
from gateway.store import open as store_open
from gateway.store.base import Store

if TYPE_CHECKING:
    from gateway.delivery import spans


class Parts:
    """A gateway's parts, built and wired from a config (or handed in by tests)."""

    def __init__(
        self,
        cfg: config.Config,
        *,
        clock: Clock | None = None,
        store: Store | None = None,
        adapters: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        owner: str | None = None,
        worker_command: Sequence[str] | None = None,
        reload_from: Callable[[], config.Config] | None = None,
    ) -> None:
        self.cfg = cfg
        #: where a reload reads the config from (``serve``: its --config file); None: no reload
        self.reload_from = reload_from
        self.environ = environ
        #: 0 in the first (or only) process; 1..N-1 in the workers it started
        self.worker_index = int(os.environ.get(WORKER_ENV, "0") or 0)
        self._worker_command = worker_command
        self.workers: Workers | None = None
        self.clock = clock or SystemClock()
        self.authenticator = auth.Authenticator(cfg.auth, environ)
        if cfg.auth.mode == "none" and not cfg.gateway.listens_on_loopback():
            raise errors.ConfigError(
                f"auth.mode: 'none' is only allowed when listening on a loopback address, "
                f'not {cfg.gateway.listen}; configure [auth] mode = "token"',
                key="auth.mode",
            )
        self.adapters = dict(adapters) if adapters is not None else registry.build_all(cfg)
        #: OpenTelemetry spans, or None (not configured: no span work anywhere)
        self.tracer = build_tracer(cfg.tracing, os.environ if environ is None else environ)
        self.redactor = redact.Redactor(cfg.audit.redact_paths)
        self.metrics = metrics.Metrics(adapters=sorted(self.adapters))
        #: store errors are counted by operation; ``self.store.inner`` is the store itself
        self.store: Store = cast(
            Store,
            metrics.InstrumentedStore(
                store
                or store_open.open_store(
                    cfg.gateway.store,
                    redactor=self.redactor,
                    timeout_s=cfg.gateway.store_timeout,
                ),
                self.metrics,
            ),
        )
        self.dispatcher = Dispatcher(
            store=self.store,
            adapters=self.adapters,
            cfg=cfg,
            clock=self.clock,
            owner=owner,
            metrics=self.metrics,
        )
        self.callbacks = callbacks.CallbackSender(
            store=self.store,
            cfg=cfg,
            clock=self.clock,
            owner=self.dispatcher.owner,
            environ=environ,
        )
        self.dispatcher.tracer = self.callbacks.tracer = self.tracer
        self.service = Service(
            store=self.store,
            cfg=cfg,
            clock=self.clock,
            adapters=self.adapters,
            on_new_work=self.dispatcher.wake,
            metrics=self.metrics,
            check_callback=self.callbacks.check_url,
        )
        self.service.acks.tracer = self.tracer
        #: receive() loops and the ack deadline sweep, paused while an adapter is in an outage
        self.ack_runner = acks.AckRunner(
            service=self.service.acks,
            store=self.store,
            adapters=self.adapters,
            cfg=cfg,
            clock=self.clock,
            ack_paused=self.dispatcher.guard.in_outage,
        )
        self.service.dispatcher_running = lambda: self.dispatcher.running
        self.service.outage_status = lambda: self.dispatcher.guard.status(self.clock.now())
        self.intake = Intake(service=self.service, sources=Sources(cfg), clock=self.clock)
        self.consumers = consumers.build(self.intake, environ=environ)
        self.service.source_status = lambda: consumers.status(self.consumers)
        self.monitor = monitoring.Monitor(
            store=self.store,
            cfg=cfg,
            clock=self.clock,
            adapters=self.adapters,
            status=lambda: self.service.outage_status(),
            ttl_s=cfg.monitoring.queue_cache,
        )
        self.app = api_app.create_app(
            self.service,
            cfg,
            authenticator=self.authenticator,
            intake=self.intake,
            monitor=self.monitor,
            metrics_=self.metrics,
            tracer=self.tracer,
        )
        self.checkpointing = trail.Checkpointing(cfg, self.store, self.clock)
        self.mover = mover.build(
            cfg, self.store, self.clock, environ or os.environ, self.worker_index
        )
        self._runner: web.AppRunner | None = None
        self.port: int | None = None


def build_tracer(section: config.TracingSection, environ: Mapping[str, str]) -> spans.Tracer | None:
    """``spans.Tracer`` when an OTLP endpoint is configured, else None; the OpenTelemetry
    SDK is imported only then (a missing ``[tracing]`` extra is a config error naming it)."""
    url = config.traces_url(section, dict(environ))
    if url is None:
        return None
    try:
        from gateway.delivery import spans  # the SDK, imported only now
    except ImportError as exc:
        raise errors.ConfigError(
            f"tracing is configured ({url}) but OpenTelemetry is not installed: "
            "pip install 'edi-gateway[tracing]'",
            key="tracing.otlp_endpoint",
        ) from exc
    return spans.build(section, environ)
