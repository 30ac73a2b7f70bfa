"""``serve``: build the store, adapters, dispatcher, service and HTTP API, and run them.

Shutdown on SIGTERM/SIGINT: ``/readyz`` turns 503 first (so a load balancer drains
this process), the dispatcher stops claiming, in-flight sends get ``shutdown_grace``
to finish, leases still held are released, then the HTTP server and the adapters close.

The audit trail records ``gateway.started``, ``config.loaded`` (with the config's hash)
and ``gateway.stopped``; a signed checkpoint of its head is written at start, every
``[audit] checkpoint_every_rows`` rows or ``checkpoint_every`` (when rows were added),
and on clean shutdown.
"""

from __future__ import annotations

import hashlib
import signal
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import anyio
import structlog
from aiohttp import web

from gateway import config, errors, metrics, monitoring, registry
from gateway.api import app as api_app
from gateway.api import auth
from gateway.audit import chain as audit
from gateway.audit import checkpoints, redact
from gateway.clock import Clock, SystemClock
from gateway.delivery import acks, callbacks
from gateway.delivery.dispatcher import Dispatcher
from gateway.inbound import consumers
from gateway.inbound.intake import Intake
from gateway.inbound.normalizers import Sources
from gateway.service import Service
from gateway.store import base
from gateway.store import open as store_open
from gateway.store.base import Store

log = structlog.get_logger("gateway.server")


class Gateway:
    """A running gateway's parts, for ``serve`` and for tests that start one in-process."""

    def __init__(
        self,
        cfg: config.Config,
        *,
        clock: Clock | None = None,
        store: Store | None = None,
        adapters: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        owner: str | None = None,
    ) -> None:
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self.authenticator = auth.Authenticator(cfg.auth, environ)
        if cfg.auth.mode == "none" and not cfg.gateway.listens_on_loopback():
            raise errors.ConfigError(
                f"auth.mode: 'none' is only allowed when listening on a loopback address, "
                f'not {cfg.gateway.listen}; configure [auth] mode = "token"',
                key="auth.mode",
            )
        self.adapters = dict(adapters) if adapters is not None else registry.build_all(cfg)
        self.redactor = redact.Redactor(cfg.audit.redact_paths)
        self.checkpoints: checkpoints.ChainCheckpoints | None = None
        self._last_checkpoint: tuple[int, float] = (0, 0.0)
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
        self.service = Service(
            store=self.store,
            cfg=cfg,
            clock=self.clock,
            adapters=self.adapters,
            on_new_work=self.dispatcher.wake,
            metrics=self.metrics,
            check_callback=self.callbacks.check_url,
        )
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
        )
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self, *, migrate: bool = True) -> None:
        """Open the store (migrating it), the adapters and the HTTP listener."""
        await self.store.open()
        try:
            if migrate:
                await self.store.migrate()
            version = await self.store.schema_version()
            if version != base.SCHEMA_VERSION:
                raise errors.StoreError(
                    f"the database schema is v{version}; this gateway needs "
                    f"v{base.SCHEMA_VERSION}: run `edi-gateway migrate`"
                )
            for name, adapter in self.adapters.items():
                try:
                    await adapter.open()
                except errors.DeliveryError as exc:
                    log.warning("adapter.open_failed", adapter=name, error=str(exc))
            await self.store.append_audit(
                "gateway.started",
                actor=base.SYSTEM,
                now=self.clock.now(),
                details={
                    "owner": self.dispatcher.owner,
                    "listen": self.cfg.gateway.listen,
                    "adapters": sorted(self.adapters),
                },
            )
            await self.store.append_audit(
                "config.loaded",
                actor=base.SYSTEM,
                now=self.clock.now(),
                details={
                    "config_sha256": config_hash(self.cfg),
                    "adapters": sorted(self.cfg.adapters),
                    "routes": len(self.cfg.routes),
                    "schema_version": version,
                },
            )
            await self._open_checkpoints()
            self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(
                self._runner, self.cfg.gateway.host, self.cfg.gateway.port, reuse_address=True
            )
            await site.start()
            server = getattr(site, "_server", None)
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1] if sockets else self.cfg.gateway.port
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._close_parts()
            raise
        log.info(
            "gateway.listening",
            listen=f"{self.cfg.gateway.host}:{self.port}",
            store=self.cfg.gateway.store_label(),
            owner=self.dispatcher.owner,
        )

    async def stop(self) -> None:
        with anyio.CancelScope(shield=True):
            try:
                await self.store.append_audit(
                    "gateway.stopped",
                    actor=base.SYSTEM,
                    now=self.clock.now(),
                    details={"owner": self.dispatcher.owner},
                )
            except errors.StoreError as exc:
                log.warning("gateway.stop_audit_failed", error=str(exc))
            await self.write_checkpoint()
            await self._close_parts()

    async def _close_parts(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for name, adapter in self.adapters.items():
            try:
                await adapter.close()
            except Exception as exc:  # one adapter failing to close must not stop the rest
                log.warning("adapter.close_failed", adapter=name, error=repr(exc))
        await self.store.close()

    async def run(self, *, stop: anyio.Event | None = None) -> None:
        """Serve until SIGTERM/SIGINT (or ``stop`` is set), then shut down gracefully."""
        # the handler is in place before start-up: a SIGTERM that comes while starting, or
        # just after /readyz turned 200, is a graceful stop, not the default (killed)
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            await self._run(stop, signals)

    async def _run(self, stop: anyio.Event | None, signals: AsyncIterator[signal.Signals]) -> None:
        await self.start()
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(self.dispatcher.run)
                checkpointing = anyio.CancelScope()
                tg.start_soon(self._checkpoint_loop, checkpointing)
                listening = await self._listen_for_work(tg)
                intake_scope = await tg.start(consumers.run_all, self.consumers)
                side = anyio.CancelScope()
                tg.start_soon(self._run_side_tasks, side)
                await self._wait_for_stop(stop, signals)
                side.cancel()
                self.service.shutting_down = True  # /readyz is 503 from here on
                log.info(
                    "gateway.shutting_down",
                    grace_s=self.cfg.gateway.shutdown_grace,
                    drain_delay_s=self.cfg.monitoring.drain_delay,
                )
                # intake goes on while a load balancer notices /readyz and drains us
                await anyio.sleep(self.cfg.monitoring.drain_delay)
                intake_scope.cancel()  # a message being taken finishes (shielded), then acks
                checkpointing.cancel()
                listening.cancel()
                await self.dispatcher.stop(self.cfg.gateway.shutdown_grace)
        finally:
            await self.stop()
            log.info("gateway.stopped")

    # --- audit checkpoints --------------------------------------------------------------

    async def _open_checkpoints(self) -> None:
        try:
            key, source = await anyio.to_thread.run_sync(
                lambda: checkpoints.load_key(self.cfg, create=True)
            )
        except OSError as exc:
            raise errors.ConfigError(
                f"audit.checkpoint_dir: cannot create the audit key file: {exc}",
                key="audit.checkpoint_dir",
            ) from exc
        assert key is not None
        directory = checkpoints.directory(self.cfg)
        if source == "generated":
            log.warning(
                "audit.key_generated",
                path=str(directory / checkpoints.KEY_FILE),
                note="set EDIGW_AUDIT__HMAC_KEY and keep the key away from the database host",
            )
        self.checkpoints = checkpoints.ChainCheckpoints(
            checkpoints.CheckpointDir(directory, key=key),
            store=self.store,
            store_url=self.cfg.gateway.store,
        )
        newest = await self.checkpoints.newest()  # this chain's own: others are not evidence
        head = await self.store.audit_head()
        if newest is not None and (head is None or head[0] < newest.seq):
            log.error(
                "audit.tail_missing",
                checkpoint_seq=newest.seq,
                head_seq=head[0] if head else 0,
                note="the audit trail has fewer rows than its last checkpoint; run audit verify",
            )
        await self.write_checkpoint()

    async def write_checkpoint(self) -> checkpoints.Checkpoint | None:
        """Sign the trail's current head into the checkpoint directory (if it moved)."""
        if self.checkpoints is None:
            return None
        try:
            head = await self.store.audit_head()
        except errors.StoreError as exc:
            log.warning("audit.checkpoint_failed", error=str(exc))
            return None
        if head is None or head[0] == self._last_checkpoint[0]:
            return None
        try:
            cp = await self.checkpoints.write(seq=head[0], head=head[1], at=_iso(self.clock))
        except OSError as exc:
            log.error("audit.checkpoint_failed", error=str(exc))
            return None
        except errors.StoreError as exc:  # reading row 1 to learn the chain's id
            log.warning("audit.checkpoint_failed", error=str(exc))
            return None
        if cp is None:
            return None
        self._last_checkpoint = (cp.seq, anyio.current_time())
        log.debug("audit.checkpoint_written", seq=cp.seq)
        return cp

    async def _checkpoint_loop(self, scope: anyio.CancelScope) -> None:
        with scope:
            await self._checkpoint_forever()

    async def _checkpoint_forever(self) -> None:
        every_s = self.cfg.audit.checkpoint_every
        every_rows = self.cfg.audit.checkpoint_every_rows
        while True:
            await anyio.sleep(min(every_s, 1.0))
            try:
                head = await self.store.audit_head()
            except errors.StoreError:
                continue
            seq, at = self._last_checkpoint
            if head is None or head[0] == seq:
                continue
            if head[0] - seq >= every_rows or anyio.current_time() - at >= every_s:
                await self.write_checkpoint()

    async def _listen_for_work(self, tg: anyio.abc.TaskGroup) -> anyio.CancelScope:
        """Wake the dispatcher on work announced by other processes, if the store can.

        A store with ``listen(callback)`` (PostgreSQL: LISTEN/NOTIFY) calls back on every
        new filing or retry from any process; the periodic scan stays the fallback.
        """
        scope = anyio.CancelScope()
        listen = getattr(self.store, "listen", None)
        if listen is not None:

            async def run(*, task_status: anyio.abc.TaskStatus[None]) -> None:
                with scope:
                    await listen(self.dispatcher.wake, task_status=task_status)

            await tg.start(run)
        return scope

    async def _run_side_tasks(self, scope: anyio.CancelScope) -> None:
        """Ack intake, ack deadlines and status callbacks: beside the dispatcher, never in
        its way; stopped first at shutdown."""
        with scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.ack_runner.run)
                tg.start_soon(self.callbacks.run)

    async def _wait_for_stop(
        self, stop: anyio.Event | None, signals: AsyncIterator[signal.Signals]
    ) -> None:
        async with anyio.create_task_group() as tg:

            async def on_signal() -> None:
                async for signum in signals:
                    log.info("gateway.signal", signal=signal.Signals(signum).name)
                    break
                tg.cancel_scope.cancel()

            async def on_event() -> None:
                assert stop is not None
                await stop.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(on_signal)
            if stop is not None:
                tg.start_soon(on_event)


def config_hash(cfg: config.Config) -> str:
    """SHA-256 of the effective config (canonical JSON; secrets appear masked)."""
    return hashlib.sha256(audit.canonical(cfg.model_dump(mode="json")).encode()).hexdigest()


def _iso(clock: Clock) -> str:
    return clock.now().isoformat().replace("+00:00", "Z")
