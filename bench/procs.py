"""Processes and databases of a benchmark run: gateways, the B1 server, stores, backlogs."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = (
    '{"isf_type":"10+2","bill_of_lading":"MAEU%d","seller":{"name":"Shenzhen Widgets Co",'
    '"country":"CN"},"buyer":{"name":"Acme Imports LLC","country":"US"},'
    '"hts":["8471.30.0100"],"notes":"%s"}'
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float = 30.0, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready in {timeout_s} s")


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (all its threads), from /proc;
    0.0 when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # the command name (field 2) may hold spaces: split after its closing parenthesis
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (a gateway with ``workers > 1`` starts others)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and the processes it started (while they run)."""
    return sum(cpu_seconds(p) for p in descendants(pid))


def _postgres_processes() -> dict[int, str]:
    """pid -> command line of every PostgreSQL server process this machine shows."""
    out: dict[int, str] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if (d / "comm").read_text().strip() != "postgres":
                continue
            out[int(d.name)] = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
    return out


class PgCpu:
    """CPU the PostgreSQL server spends on one database over an interval, from /proc.

    ``backends_s``: the server processes serving connections to ``database`` (their
    command line names it), counted exactly. ``shared_s``: the server's background
    processes (WAL writer, checkpointer, background writer, autovacuum), which serve every
    database on the server, other users' included; shown apart, as an upper bound.
    A backend ends with its connection, so a thread samples them every 0.2 s while the
    interval runs and keeps each one's last figure (at most 0.2 s of a closing one's
    CPU goes uncounted).
    """

    def __init__(self, database: str) -> None:
        self.database = database
        self.start: dict[int, float] = {}
        self.start_shared: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.last_shared: dict[int, float] = {}
        self.backends_s = 0.0
        self.shared_s = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _split(self) -> tuple[dict[int, float], dict[int, float]]:
        mine: dict[int, float] = {}
        shared: dict[int, float] = {}
        for pid, cmd in _postgres_processes().items():
            words = cmd.split()
            if f" {self.database} " in f" {cmd} ":
                mine[pid] = cpu_seconds(pid)
            elif (
                len(words) >= 2
                and words[0] == "postgres:"
                and not any(w.endswith(")") and "(" in w for w in words)
            ):
                shared[pid] = cpu_seconds(pid)
        return mine, shared

    def _sample(self) -> None:
        mine, shared = self._split()
        for pid, v in mine.items():
            if v:
                self.last[pid] = v
        for pid, v in shared.items():
            if v:
                self.last_shared[pid] = v

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self._sample()

    def begin(self) -> None:
        self.start, self.start_shared = self._split()
        self.last, self.last_shared = dict(self.start), dict(self.start_shared)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def end(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        # a backend that connected during the interval counts from zero
        self.backends_s = sum(v - self.start.get(pid, 0.0) for pid, v in self.last.items())
        self.shared_s = sum(
            v - self.start_shared.get(pid, 0.0) for pid, v in self.last_shared.items()
        )


def rss_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in kB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0])
    return out


@dataclass
class Proc:
    """A child process we started (and only ever signal by its own pid)."""

    popen: subprocess.Popen[Any]
    log: Path
    port: int
    #: CPU seconds used when it became ready (start-up, imports and migration left out)
    cpu_ready: float = 0.0
    #: CPU seconds used just before it was asked to stop (None while running)
    cpu_end: float | None = None

    def mark_ready(self) -> None:
        self.cpu_ready = tree_cpu_seconds(self.popen.pid)

    def cpu_used(self) -> float:
        """CPU seconds from ready to the stop (or to now, while it runs), the processes
        it started included."""
        end = self.cpu_end if self.cpu_end is not None else tree_cpu_seconds(self.popen.pid)
        return max(0.0, end - self.cpu_ready)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.popen.poll() is None:
            if self.cpu_end is None:
                self.cpu_end = tree_cpu_seconds(self.popen.pid)
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start_b1(workdir: Path) -> Proc:
    port = free_port()
    log = workdir / "b1.log"
    p = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "noop_server.py"), str(port)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    proc = Proc(p, log, port)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                proc.mark_ready()
                return proc
        time.sleep(0.1)
    proc.stop()
    raise RuntimeError("the B1 server did not start")


@dataclass
class GatewaySpec:
    store: str
    concurrency: int = 256
    claim_batch: int = 500
    rate_limit: float | None = None
    burst: int = 10
    extra_gateway: dict[str, Any] = field(default_factory=dict)
    log_level: str = "info"
    #: the one adapter's name and its TOML lines (default: the no-op adapter)
    adapter: str = "noop"
    adapter_lines: list[str] | None = None
    #: ``[gateway] workers``: serve processes on one port (written only when > 1)
    workers: int = 1


def write_config(spec: GatewaySpec, workdir: Path, port: int, name: str) -> Path:
    gw = {
        "listen": f'"127.0.0.1:{port}"',
        "store": f'"{spec.store}"',
        "claim_batch": str(spec.claim_batch),
        "log_format": '"json"',
        "log_level": f'"{spec.log_level}"',
        "shutdown_grace": '"5s"',
    }
    if spec.workers > 1:
        gw["workers"] = str(spec.workers)
    gw.update({k: str(v) for k, v in spec.extra_gateway.items()})
    lines = ["[gateway]", *(f"{k} = {v}" for k, v in gw.items())]
    lines += ["", "[auth]", 'mode = "none"', "", f"[adapters.{spec.adapter}]"]
    lines += spec.adapter_lines or ['factory = "bench.noop_adapter:NoopAdapter"']
    lines += [f"concurrency = {spec.concurrency}"]
    if spec.rate_limit is not None:
        lines += [f"rate_limit = {spec.rate_limit}", f"burst = {spec.burst}"]
    lines += ["", "[[routes]]", 'filing_types = ["*"]', 'environments = ["cert", "production"]']
    lines += [
        f'adapters = ["{spec.adapter}"]',
        "",
        "[audit]",
        f'checkpoint_dir = "{workdir / "cp"}"',
    ]
    path = workdir / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def wait_listening(log: Path, n: int, timeout_s: float) -> None:
    """Wait until ``n`` processes have logged ``gateway.listening`` (every worker ready)."""
    deadline = time.monotonic() + timeout_s
    while log.read_text(errors="replace").count('"gateway.listening"') < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{n} serve processes did not all start in {timeout_s} s")
        time.sleep(0.1)


def start_gateway(spec: GatewaySpec, workdir: Path, name: str = "gw") -> Proc:
    port = free_port()
    cfg = write_config(spec, workdir, port, name)
    log = workdir / f"{name}.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "EDIGW_AUDIT__HMAC_KEY": "bench-only-key-0123456789abcdef0123456789abcdef",
    }
    p = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli.main", "serve", "--config", str(cfg)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=str(workdir),
    )
    proc = Proc(p, log, port)
    try:
        wait_http(f"{proc.url}/readyz", 60, p)
        wait_listening(log, spec.workers, 60)
        proc.mark_ready()
    except RuntimeError as exc:
        proc.stop()
        tail = log.read_text()[-800:]
        raise RuntimeError(f"{exc}; log tail: {tail}") from exc
    return proc


# --- stores -------------------------------------------------------------------------------


def sqlite_url(path: Path, synchronous: str | None = None) -> str:
    return f"sqlite:///{path}" + (f"?synchronous={synchronous}" if synchronous else "")


async def fresh_pg(admin_dsn: str, name: str) -> str:
    """Drop and create database ``name``; return its DSN."""
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin_dsn.rsplit("/", 1)[0] + "/" + name


async def migrate(url: str) -> None:
    sys.path.insert(0, str(ROOT))

    from gateway.store import open as store_open

    store = store_open.open_store(url)
    await store.open()
    try:
        await store.migrate()
    finally:
        await store.close()


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///").split("?", 1)[0]


async def delivery_times(url: str) -> list[tuple[int, int]]:
    """(received_at, delivered_at) in µs of every delivered filing."""
    sql = (
        "SELECT f.received_at, d.delivered_at FROM deliveries d JOIN filings f "
        "ON f.seq = d.filing_seq WHERE d.delivered_at IS NOT NULL"
    )
    if url.startswith("sqlite:"):
        conn = sqlite3.connect(_sqlite_path(url))
        try:
            return [(int(a), int(b)) for a, b in conn.execute(sql)]
        finally:
            conn.close()
    import asyncpg

    c = await asyncpg.connect(url)
    try:
        return [(int(r[0]), int(r[1])) for r in await c.fetch(sql)]
    finally:
        await c.close()


async def count(url: str, where: str = "1=1", table: str = "deliveries") -> int:
    sql = f"SELECT count(*) FROM {table} WHERE {where}"
    if url.startswith("sqlite:"):
        conn = sqlite3.connect(_sqlite_path(url))
        try:
            return int(conn.execute(sql).fetchone()[0])
        finally:
            conn.close()
    import asyncpg

    c = await asyncpg.connect(url)
    try:
        return int(await c.fetchval(sql))
    finally:
        await c.close()


async def wait_delivered(url: str, expected: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    n = 0
    while time.monotonic() < deadline:
        n = await count(url, "delivered_at IS NOT NULL")
        if n >= expected:
            return n
        await asyncio.sleep(0.5)
    return n


async def preload(
    url: str, n: int, *, state: str = "pending", available_in_s: float = 0, adapter: str = "noop"
) -> None:
    """Insert ``n`` waiting filings (one noop delivery each) straight into the tables.

    Setup, not a measured figure: one INSERT … SELECT per table. Payloads are ~300 bytes.
    """
    now_us = int(time.time() * 1e6)
    avail = now_us + int(available_in_s * 1e6)
    pad = "x" * 120
    f_sql = (
        "INSERT INTO filings (id, filing_type, environment, reference, filer_code, "
        "idempotency_key, body_hash, ordering_key, due_by, content_type, payload, "
        "payload_is_json, callback_url, metadata, source, received_at, status, updated_at) "
        "SELECT 'fil_pre' || {x}, 'isf', 'cert', 'ISF-PRE-' || {x}, 'XYZ', NULL, "
        "'0000', 'ISF-PRE-' || {x}, NULL, 'application/json', "
        "replace('{payload}', '%d', {x}), 1, NULL, '{{}}', 'bench', {now}, '{status}', {now} "
        "FROM {series}"
    )
    d_sql = (
        "INSERT INTO deliveries (id, filing_seq, filing_id, adapter, ordering_key, state, "
        "available_at, due_by, created_at, updated_at) "
        "SELECT 'dlv_pre' || substr(f.id, 8), f.seq, f.id, '{adapter}', f.ordering_key, '{state}', "
        "{avail}, NULL, {now}, {now} FROM filings f WHERE f.id LIKE 'fil_pre%'"
    )
    payload = (PAYLOAD % (0, pad)).replace("MAEU0", "MAEU%d")
    fs_status = "deferred" if state == "deferred" else "pending"
    if url.startswith("sqlite:"):
        series = (
            f"(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) "
            "SELECT x FROM c)"
        )
        conn = sqlite3.connect(_sqlite_path(url), isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("BEGIN")
            conn.execute(
                f_sql.format(x="x", payload=payload, now=now_us, status=fs_status, series=series)
            )
            conn.execute(d_sql.format(state=state, avail=avail, now=now_us, adapter=adapter))
            conn.execute("COMMIT")
            conn.execute("ANALYZE")
        finally:
            conn.close()
        return
    import asyncpg

    c = await asyncpg.connect(url)
    try:
        async with c.transaction():
            await c.execute(
                f_sql.format(
                    x="x::text",
                    payload=payload,
                    now=now_us,
                    status=fs_status,
                    series=f"generate_series(1, {n}) AS x",
                )
            )
            await c.execute(d_sql.format(state=state, avail=avail, now=now_us, adapter=adapter))
        await c.execute("ANALYZE")
    finally:
        await c.close()
