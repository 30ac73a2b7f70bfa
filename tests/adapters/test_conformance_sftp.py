"""The conformance kit against the ``sftp`` adapter and a real OpenSSH server on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from adapters import testing
from tests.adapters.conftest import Sshd, free_port

pytestmark = pytest.mark.services
sftp = pytest.importorskip("adapters.sftp")


class SftpDirectoryReceiver(testing.Receiver):
    """The server side of the drop box, read from the local disk under sshd."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _files(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if p.is_file())

    async def received(self) -> list[testing.Received]:
        files = await anyio.to_thread.run_sync(self._files)
        return [
            testing.Received(id=p.name.split(".")[0], body=p.read_bytes())
            for p in files
            if not p.name.startswith(".")
        ]

    async def leftovers(self) -> list[str]:
        files = await anyio.to_thread.run_sync(self._files)
        return [p.name for p in files if p.name.startswith(".")]


def sftp_options(sshd: Sshd, **changes: Any) -> Any:
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": sshd.port,
        "username": sshd.username,
        "private_key_file": sshd.user_key_file,
        "known_hosts_file": sshd.known_hosts_file,
        "directory": "/nonexistent",
        "timeout": "5s",
    }
    return sftp.SftpOptions(**{**options, **changes})


class TestSftpConformance(testing.AdapterConformance):
    bad_options = [
        ({"host": "h", "username": "u", "directory": "/d", "private_key_file": "/etc/passwd"},
         "known_hosts_file"),
        ({"host": "h", "username": "u", "directory": "/d", "private_key_file": "/no/such/key",
          "known_hosts_file": "/etc/passwd"}, "/no/such/key does not exist"),
        ({"host": "h", "port": 0, "username": "u", "directory": "/d",
          "private_key_file": "/etc/passwd", "known_hosts_file": "/etc/passwd"}, "port"),
        ({"host": "h", "username": "u", "directory": "/d", "private_key_file": "/etc/passwd",
          "known_hosts_file": "/etc/passwd", "archive": "/a"}, "archive needs inbox"),
    ]  # fmt: skip

    @pytest.fixture
    def receiver(self, sshd: Sshd) -> SftpDirectoryReceiver:
        return SftpDirectoryReceiver(sshd.directory("conformance"))

    @pytest.fixture
    def adapter(self, sshd: Sshd, receiver: SftpDirectoryReceiver) -> Any:
        options = sftp_options(sshd, directory=str(receiver.directory))
        return sftp.SftpAdapter(name="sftp", options=options)

    @pytest.fixture
    def unreachable_adapter(self, sshd: Sshd) -> Any:
        options = sftp_options(sshd, port=free_port(), timeout="2s")
        return sftp.SftpAdapter(name="sftp", options=options)
