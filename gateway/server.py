"""``serve``: build the store, adapters, dispatcher, service and HTTP API, and run them.

Shutdown on SIGTERM/SIGINT: ``/readyz`` turns 503 first (so a load balancer drains
this process), the dispatcher stops claiming, in-flight sends get ``shutdown_grace``
to finish, leases still held are released, then the HTTP server and the adapters close.

The audit trail records ``gateway.started``, ``config.loaded`` (with the config's hash)
and ``gateway.stopped``; a signed checkpoint of its head is written at start, every
``[audit] checkpoint_every_rows`` rows or ``checkpoint_every`` (when rows were added),
and on clean shutdown.

Several processes (``[gateway] workers = N``): one gateway process is bound by Python
work per filing under one GIL, so a machine's other cores serve only through other
processes. The process ``serve`` starts (the first) opens the store, migrates it and
listens; then it starts N-1 more ``serve`` processes with the same command line and
environment, each a whole gateway (HTTP API, dispatcher, its own store connection and
group commit), all listening on the same port with ``SO_REUSEPORT``, so the kernel spreads
connections over them. They share the work through the store as separate gateway
processes always could: leases and fencing tokens keep a delivery with one process, the
per-key order holds across processes, and on SQLite the database's writer lock serialises
their commits (each process still group-commits its own concurrent requests). The first
process forwards SIGTERM/SIGINT to the others and waits for their graceful stop before its
own ends; one that dies is started again (at most every few seconds); and one whose first
process is gone (``kill -9``) stops itself gracefully. ``make run`` stays one command.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
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

#: in the environment of the processes the first one starts: their index (1..N-1) …
WORKER_ENV = "EDIGW_WORKER"
#: … and the port the first one listens on (it may have been given port 0)
WORKER_PORT_ENV = "EDIGW_WORKER_PORT"
#: the least time between two starts of the same worker slot
RESTART_EVERY_S = 5.0


class Workers:
    """The other ``serve`` processes of a ``workers = N`` gateway, as the first one sees
    them: started, started again when one dies, signalled and waited for at shutdown."""

    def __init__(self, command: Sequence[str], count: int, port: int) -> None:
        self.command = list(command)
        self.count = count
        self.port = port
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.started_at: dict[int, float] = {}
        self.stopping = False

    def _spawn(self, index: int) -> None:
        env = {**os.environ, WORKER_ENV: str(index), WORKER_PORT_ENV: str(self.port)}
        self.procs[index] = subprocess.Popen(self.command, env=env)
        self.started_at[index] = time.monotonic()
        log.info("gateway.worker_started", worker=index, pid=self.procs[index].pid)

    def start(self) -> None:
        for index in range(1, self.count):
            self._spawn(index)

    async def watch(self) -> None:
        """Start again a worker that exited while the gateway serves."""
        while not self.stopping:
            await anyio.sleep(0.5)
            for index, proc in list(self.procs.items()):
                code = proc.poll()
                if code is None or self.stopping:
                    continue
                if time.monotonic() - self.started_at[index] < RESTART_EVERY_S:
                    continue
                log.warning("gateway.worker_exited", worker=index, pid=proc.pid, code=code)
                self._spawn(index)

    def signal(self, signum: int) -> None:
        self.stopping = True
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signum)

    async def wait(self, timeout_s: float) -> None:
        """Wait for every worker to exit; kill one still running after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while any(p.poll() is None for p in self.procs.values()):
            if time.monotonic() >= deadline:
                for index, proc in self.procs.items():
                    if proc.poll() is None:
                        log.error("gateway.worker_killed", worker=index, pid=proc.pid)
                        proc.kill()
                        proc.wait()
                break
            await anyio.sleep(0.05)


def worker_command() -> list[str]:
    """The command line that started this ``serve`` process, to start its workers with."""
    if "serve" not in sys.orig_argv[1:]:
        raise errors.ConfigError(
            "gateway.workers: more than one process needs `edi-gateway serve`",
            key="gateway.workers",
        )
    return [sys.executable, *sys.orig_argv[1:]]


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
        worker_command: Sequence[str] | None = None,
    ) -> None:
        self.cfg = cfg
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
                tg.start_soon(self._checkpoint_loop, checkpointing)
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


def config_hash(cfg: config.Config) -> str:
    """SHA-256 of the effective config (canonical JSON; secrets appear masked)."""
    return hashlib.sha256(audit.canonical(cfg.model_dump(mode="json")).encode()).hexdigest()


def _iso(clock: Clock) -> str:
    return clock.now().isoformat().replace("+00:00", "Z")
