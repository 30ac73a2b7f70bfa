"""The other ``serve`` processes of a ``[gateway] workers = N`` gateway.

One gateway process is bound by Python work per filing under one GIL, so a machine's
other cores serve only through other processes. The process ``serve`` starts (the
first) opens the store, migrates it and listens; then it starts N-1 more ``serve``
processes with the same command line and environment, each a whole gateway (HTTP API,
dispatcher, its own store connection and group commit), all listening on the same port
with ``SO_REUSEPORT``, so the kernel spreads connections over them. They share the work
through the store as separate gateway processes always could: leases and fencing tokens
keep a delivery with one process, the per-key order holds across processes, and on
SQLite their commits queue for the writer lock file, each woken as the one before lets
go, while one of them at a time checkpoints the WAL (``gateway.sqlite_wal``). The first
process forwards SIGTERM/SIGINT to the others and waits for their graceful stop before its
own ends; one that dies is started again (at most every few seconds); and one whose first
process is gone (``kill -9``) stops itself gracefully. ``make run`` stays one command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence

import anyio
import structlog

from gateway import errors

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
