"""``serve``: build the store, adapters, dispatcher, service and HTTP API, and run them.

Shutdown on SIGTERM/SIGINT: ``/readyz`` turns 503 first (so a load balancer drains
this process), the dispatcher stops claiming, in-flight sends get ``shutdown_grace``
to finish, leases still held are released, then the HTTP server and the adapters close.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from typing import Any

import anyio
import structlog
from aiohttp import web

from gateway import acks, callbacks, config, errors, registry
from gateway.api import app as api_app
from gateway.api import auth
from gateway.clock import Clock, SystemClock
from gateway.dispatcher import Dispatcher
from gateway.service import Service
from gateway.store import base
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
        self.store = store or base.open_store(cfg.gateway.store)
        self.dispatcher = Dispatcher(
            store=self.store, adapters=self.adapters, cfg=cfg, clock=self.clock, owner=owner
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
            check_callback=self.callbacks.check_url,
        )
        #: receive() loops and the ack deadline sweep; ``ack_paused`` is the outage hook
        self.ack_runner = acks.AckRunner(
            service=self.service.acks,
            store=self.store,
            adapters=self.adapters,
            cfg=cfg,
            clock=self.clock,
        )
        self.service.dispatcher_running = lambda: self.dispatcher.running
        self.app = api_app.create_app(self.service, cfg, authenticator=self.authenticator)
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
            store=_redact_url(self.cfg.gateway.store),
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
        await self.start()
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(self.dispatcher.run)
                side = anyio.CancelScope()
                tg.start_soon(self._run_side_tasks, side)
                await self._wait_for_stop(stop)
                side.cancel()
                self.service.shutting_down = True
                log.info("gateway.shutting_down", grace_s=self.cfg.gateway.shutdown_grace)
                await self.dispatcher.stop(self.cfg.gateway.shutdown_grace)
        finally:
            await self.stop()
            log.info("gateway.stopped")

    async def _run_side_tasks(self, scope: anyio.CancelScope) -> None:
        """Ack intake, ack deadlines and status callbacks: beside the dispatcher, never in
        its way; stopped first at shutdown."""
        with scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.ack_runner.run)
                tg.start_soon(self.callbacks.run)

    async def _wait_for_stop(self, stop: anyio.Event | None) -> None:
        async with anyio.create_task_group() as tg:

            async def on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
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


def _redact_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url
