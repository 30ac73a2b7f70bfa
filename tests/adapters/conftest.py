"""Real peers on loopback for the adapter tests: RabbitMQ, an OpenSSH server, a TCP proxy.

Nothing here mocks a transport. A service that cannot be reached skips its tests with the
reason, or fails them when ``EDIGW_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import service_missing

RABBITMQ_HOST = os.environ.get("EDIGW_TEST_RABBITMQ_HOST", "127.0.0.1")
RABBITMQ_PORT = int(os.environ.get("EDIGW_TEST_RABBITMQ_PORT", "5672"))
SSHD = Path(os.environ.get("EDIGW_TEST_SSHD", "/usr/sbin/sshd"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def unique(prefix: str) -> str:
    return f"edigw-test-{prefix}-{uuid.uuid4().hex[:12]}"


# --- a TCP proxy the tests can cut ---------------------------------------------------


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; ``cut()`` drops every live connection."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        await asyncio.gather(*pumps, return_exceptions=True)
        self._tasks.difference_update(pumps)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def cut(self) -> None:
        """Drop every connection now (both sides see a reset); new ones still work."""
        self.cuts += 1
        for writer in list(self._writers):
            transport = writer.transport
            with contextlib.suppress(OSError):
                sock = transport.get_extra_info("socket")
                if sock is not None:  # RST, like a dead network path, not a polite FIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            transport.abort()
        self._writers.clear()

    async def aclose(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.fixture
async def tcp_proxy_factory() -> AsyncIterator[list[TcpProxy]]:
    proxies: list[TcpProxy] = []
    yield proxies
    for proxy in proxies:
        await proxy.aclose()


# --- RabbitMQ ------------------------------------------------------------------------


@pytest.fixture
def rabbitmq_url() -> str:
    """guest/guest on the RabbitMQ that .ci/run starts (127.0.0.1:5672)."""
    if not port_open(RABBITMQ_HOST, RABBITMQ_PORT):
        service_missing(f"RabbitMQ is not listening on {RABBITMQ_HOST}:{RABBITMQ_PORT}")
    return f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}/"


@pytest.fixture
async def rabbit(rabbitmq_url: str) -> AsyncIterator[object]:
    """A plain aio-pika channel for setting up and reading queues; deletes what it made."""
    aio_pika = pytest.importorskip("aio_pika")
    connection = await aio_pika.connect(rabbitmq_url)
    channel = await connection.channel()
    channel.made = []  # type: ignore[attr-defined]
    try:
        yield channel
    finally:
        for kind, name in reversed(channel.made):  # type: ignore[attr-defined]
            with contextlib.suppress(Exception):
                if kind == "queue":
                    await channel.queue_delete(name)
                else:
                    await channel.exchange_delete(name)
        await connection.close()


# --- OpenSSH -------------------------------------------------------------------------


@dataclass
class Sshd:
    """A real sshd on loopback with its own host key, user key and config."""

    port: int
    root: Path
    username: str
    user_key_file: Path
    known_hosts_file: Path
    host_public_key: str
    process: subprocess.Popen[bytes]

    def directory(self, name: str) -> Path:
        """A fresh directory the SFTP user can write (a local path on this machine)."""
        path = self.root / "files" / f"{name}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        return path


def _write_sshd(root: Path, port: int) -> tuple[Path, Path, Path, str]:
    asyncssh = pytest.importorskip("asyncssh")
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    host_key_file = root / "ssh_host_ed25519_key"
    host_key.write_private_key(str(host_key_file))
    host_key_file.chmod(0o600)
    user_key = asyncssh.generate_private_key("ssh-ed25519")
    user_key_file = root / "id_ed25519"
    user_key.write_private_key(str(user_key_file))
    user_key_file.chmod(0o600)
    user_key.write_public_key(str(root / "authorized_keys"))
    host_public = host_key.export_public_key().decode().strip()
    known_hosts = root / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_public}\n")
    config = root / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key_file}",
                f"PidFile {root / 'sshd.pid'}",
                f"AuthorizedKeysFile {root / 'authorized_keys'}",
                "StrictModes no",
                "UsePAM no",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "MaxStartups 50",
                "MaxSessions 50",
                "LogLevel ERROR",
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    return config, user_key_file, known_hosts, host_public


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """An OpenSSH server on a free loopback port, killed at the end of the session."""
    if not SSHD.exists():
        service_missing(f"{SSHD} is missing (apt-get install openssh-server)")
    root = tmp_path_factory.mktemp("sshd")
    root.chmod(0o755)
    port = free_port()
    config, user_key_file, known_hosts, host_public = _write_sshd(root, port)
    with contextlib.suppress(OSError):
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
    log = (root / "sshd.log").open("wb")
    process = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", port, 0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                service_missing(f"sshd did not start: {(root / 'sshd.log').read_text()[-500:]}")
            time.sleep(0.05)
        yield Sshd(
            port=port,
            root=root,
            username=getpass.getuser(),
            user_key_file=user_key_file,
            known_hosts_file=known_hosts,
            host_public_key=host_public,
            process=process,
        )
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(root / "files", ignore_errors=True)
