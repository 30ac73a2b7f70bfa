"""``Gateway``: its parts (``parts.Parts``) started, run and stopped.

Start: open the store (migrating it), the adapters, the audit rows and checkpoints, and
the HTTP listener. Shutdown on SIGTERM/SIGINT: ``/readyz`` turns 503 first (so a load
balancer drains this process), the dispatcher stops claiming, in-flight sends get
``shutdown_grace`` to finish, leases still held are released, then the HTTP server and
the adapters close.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import anyio
import structlog
from aiohttp import web

from gateway import errors
from gateway.api import admin
from gateway.audit import checkpoints
from gateway.inbound import consumers
from gateway.server import reload, trail
from gateway.server.parts import Parts
from gateway.server.workers import WORKER_PORT_ENV, Workers, worker_command
from gateway.store import schema

log = structlog.get_logger("gateway.server")


class Gateway(Parts):
    """A running gateway, for ``serve`` and for tests that start one in-process."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: SIGHUP and POST /v1/admin/reload (``reload``)
        self.reloader = reload.Reloader(
            self, source=self.reload_from, environ=self.environ, restart_acks=self._restart_acks
        )
        if self.reload_from is not None:
            self.app[admin.RELOAD] = self.reloader.reload
        self._acks_scope: anyio.CancelScope | None = None

    async def start(self, *, migrate: bool = True) -> None:
        """Open the store (migrating it), the adapters and the HTTP listener."""
        await self.store.open()
        try:
            if migrate:
                await self.store.migrate()
            version = await self.store.schema_version()
            if version != schema.SCHEMA_VERSION:
                raise errors.StoreError(
                    f"the database schema is v{version}; this gateway needs "
                    f"v{schema.SCHEMA_VERSION}: run `edi-gateway migrate`"
                )
            for name, adapter in self.adapters.items():
                try:
                    await adapter.open()
                except errors.DeliveryError as exc:
                    log.warning("adapter.open_failed", adapter=name, error=str(exc))
            await trail.record_start(
                self.store,
                self.cfg,
                self.clock,
                owner=self.dispatcher.owner,
                adapters=self.adapters,
                version=version,
            )
            await self.checkpointing.open()
            self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
            await self._runner.setup()
            port = self.cfg.gateway.port
            if self.worker_index and os.environ.get(WORKER_PORT_ENV):
                port = int(os.environ[WORKER_PORT_ENV])
            site = web.TCPSite(
                self._runner,
                self.cfg.gateway.host,
                port,
                reuse_address=True,
                reuse_port=self.cfg.gateway.workers > 1 or None,
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
            worker=self.worker_index,
        )

    async def stop(self) -> None:
        with anyio.CancelScope(shield=True):
            await trail.record_stop(self.store, self.clock, owner=self.dispatcher.owner)
            await self.checkpointing.write()
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
        if self.tracer is not None:  # export the last spans (the SDK's call blocks)
            await anyio.to_thread.run_sync(self.tracer.shutdown)

    async def run(self, *, stop: anyio.Event | None = None) -> None:
        """Serve until SIGTERM/SIGINT (or ``stop`` is set), then shut down gracefully;
        SIGHUP reloads the config (``reload``)."""
        # the handler is in place before start-up: a SIGTERM that comes while starting, or
        # just after /readyz turned 200, is a graceful stop, not the default (killed)
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            await self._run(stop, signals)

    async def _run(self, stop: anyio.Event | None, signals: AsyncIterator[signal.Signals]) -> None:
        await self.start()
        try:
            async with anyio.create_task_group() as tg:
                if self.cfg.gateway.workers > 1 and self.worker_index == 0:
                    # after start(): the store is migrated and the port known
                    self.workers = Workers(
                        self._worker_command or worker_command(),
                        self.cfg.gateway.workers,
                        self.port or self.cfg.gateway.port,
                    )
                    self.workers.start()
                    tg.start_soon(self.workers.watch)
                await tg.start(self.dispatcher.run)
                checkpointing = anyio.CancelScope()
                tg.start_soon(self.checkpointing.run, checkpointing)
                listening = await self._listen_for_work(tg)
                intake_scope = await tg.start(consumers.run_all, self.consumers)
                side = anyio.CancelScope()
                tg.start_soon(self._run_side_tasks, side)
                await self._wait_for_stop(stop, signals)
                if self.workers is not None:
                    self.workers.signal(signal.SIGTERM)  # they drain beside us
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
            if self.workers is not None:
                with anyio.CancelScope(shield=True):
                    self.workers.signal(signal.SIGTERM)
                    await self.workers.wait(
                        self.cfg.gateway.shutdown_grace + self.cfg.monitoring.drain_delay + 15
                    )
            await self.stop()
            log.info("gateway.stopped")

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
                tg.start_soon(self._run_acks)
                tg.start_soon(self.callbacks.run)
                if self.mover is not None:  # the records mover (issue 20)
                    tg.start_soon(self.mover.run)

    async def _run_acks(self) -> None:
        """The ack runner, started again with the new adapters after a reload changed some."""
        while True:
            self._acks_scope = anyio.CancelScope()
            with self._acks_scope:
                await self.ack_runner.run()
                return

    def _restart_acks(self) -> None:
        if self._acks_scope is not None:
            self._acks_scope.cancel()

    async def _wait_for_stop(
        self, stop: anyio.Event | None, signals: AsyncIterator[signal.Signals]
    ) -> None:
        async with anyio.create_task_group() as tg:

            async def on_signal() -> None:
                async for signum in signals:
                    log.info("gateway.signal", signal=signal.Signals(signum).name)
                    if signum == signal.SIGHUP:
                        if self.workers is not None:
                            self.workers.signal(signal.SIGHUP)  # each reloads its own
                        tg.start_soon(self._reload_on_signal)
                        continue
                    break
                tg.cancel_scope.cancel()

            async def on_event() -> None:
                assert stop is not None
                await stop.wait()
                tg.cancel_scope.cancel()

            async def on_orphaned() -> None:
                parent = os.getppid()
                while True:  # no event to wait on: a parent's death is only seen by polling
                    await anyio.sleep(1.0)
                    if os.getppid() != parent:
                        break
                log.warning("gateway.first_process_gone", worker=self.worker_index)
                tg.cancel_scope.cancel()

            tg.start_soon(on_signal)
            if stop is not None:
                tg.start_soon(on_event)
            if self.worker_index:
                tg.start_soon(on_orphaned)

    async def _reload_on_signal(self) -> None:
        """SIGHUP: reload; a refusal is logged (``config.reload_refused``, naming the key)
        and the gateway goes on with the config it had."""
        try:
            await self.reloader.reload()
        except errors.ConfigError:
            pass  # logged by the reloader with the key

    async def write_checkpoint(self) -> checkpoints.Checkpoint | None:
        """Sign the trail's current head into the checkpoint directory (if it moved)."""
        return await self.checkpointing.write()
