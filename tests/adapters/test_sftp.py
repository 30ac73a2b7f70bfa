"""The ``sftp`` adapter against a real OpenSSH server on loopback (no mocks)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from adapters import testing
from gateway import errors
from tests.adapters.conftest import Sshd, TcpProxy
from tests.adapters.test_conformance_sftp import sftp_options

pytestmark = pytest.mark.services
sftp = pytest.importorskip("adapters.sftp")
asyncssh = pytest.importorskip("asyncssh")


def make_adapter(sshd: Sshd, **changes: Any) -> Any:
    return sftp.SftpAdapter(name="sftp", options=sftp_options(sshd, **changes))


class Watcher(threading.Thread):
    """Reads every file in a directory as fast as it can, noting what it saw."""

    def __init__(self, directory: Path) -> None:
        super().__init__(daemon=True)
        self.directory = directory
        self.stop = threading.Event()
        self.finals: list[bytes] = []
        self.temps: set[str] = set()

    def run(self) -> None:
        while not self.stop.is_set():
            for path in self.directory.iterdir():
                if path.name.startswith("."):
                    self.temps.add(path.name)
                    continue
                try:
                    self.finals.append(path.read_bytes())
                except FileNotFoundError:
                    pass


async def test_upload_never_shows_a_partial_file_under_the_final_name(sshd: Sshd) -> None:
    """While 8 MiB uploads (and a redelivery overwrites them), the final name is always whole."""
    directory = sshd.directory("atomic")
    adapter = make_adapter(sshd, directory=str(directory))
    first = testing.make_message(body=b"A" * (8 << 20))
    again = testing.make_message(delivery_id=first.delivery_id, body=b"B" * (8 << 20), attempt=2)
    watcher = Watcher(directory)
    watcher.start()
    try:
        await adapter.send(first)
        await adapter.send(again)
    finally:
        watcher.stop.set()
        await anyio.to_thread.run_sync(watcher.join)
        await adapter.close()
    assert watcher.finals, "the watcher never saw the final file"
    assert {len(seen) for seen in watcher.finals} == {8 << 20}
    assert {seen[:1] for seen in watcher.finals} <= {b"A", b"B"}
    assert watcher.temps, "the upload should have gone through a temporary name"
    assert [p.name for p in directory.iterdir()] == [f"{first.delivery_id}.json"]
    assert (directory / f"{first.delivery_id}.json").read_bytes() == again.body


async def test_known_hosts_mismatch_is_refused_with_a_clear_error(
    sshd: Sshd, tmp_path: Path
) -> None:
    """A host key that does not match known_hosts: PermanentError naming it, nothing sent."""
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {impostor}")
    directory = sshd.directory("mitm")
    adapter = make_adapter(sshd, directory=str(directory), known_hosts_file=known_hosts)
    try:
        with pytest.raises(errors.PermanentError, match="host key does not match known_hosts"):
            await adapter.send(testing.make_message())
        health = await adapter.check()
    finally:
        await adapter.close()
    assert not health.ok
    assert "host key" in health.detail
    assert list(directory.iterdir()) == []


async def test_unknown_host_is_refused_not_blindly_accepted(sshd: Sshd, tmp_path: Path) -> None:
    """A known_hosts without this server: refused, never trust-on-first-use."""
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:1 {sshd.host_public_key}\n")  # another port
    adapter = make_adapter(
        sshd, directory=str(sshd.directory("tofu")), known_hosts_file=known_hosts
    )
    try:
        with pytest.raises(errors.PermanentError, match="host key"):
            await adapter.send(testing.make_message())
    finally:
        await adapter.close()


async def test_a_key_the_server_does_not_know_is_permanent(sshd: Sshd, tmp_path: Path) -> None:
    """A client key not in authorized_keys: PermanentError saying authentication was refused."""
    stranger = tmp_path / "id_stranger"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(stranger))
    adapter = make_adapter(sshd, directory=str(sshd.directory("auth")), private_key_file=stranger)
    try:
        with pytest.raises(errors.PermanentError, match="authentication refused"):
            await adapter.send(testing.make_message())
    finally:
        await adapter.close()


async def test_missing_remote_directory_is_permanent(sshd: Sshd) -> None:
    """Uploading into a directory that does not exist is refused for good, with the path."""
    missing = str(sshd.root / "files" / "no-such-dir")
    adapter = make_adapter(sshd, directory=missing)
    try:
        with pytest.raises(errors.PermanentError, match="no-such-dir"):
            await adapter.send(testing.make_message())
        assert not (await adapter.check()).ok
    finally:
        await adapter.close()


async def test_dropped_connection_is_transient_then_reconnects(
    sshd: Sshd, tcp_proxy_factory: list[TcpProxy]
) -> None:
    """The SSH link is cut between sends: at most a TransientError, then a new connection."""
    proxy = await TcpProxy("127.0.0.1", sshd.port).start()
    tcp_proxy_factory.append(proxy)
    known_hosts = sshd.root / f"known_hosts_proxy_{proxy.port}"
    known_hosts.write_text(f"[127.0.0.1]:{proxy.port} {sshd.host_public_key}\n")
    directory = sshd.directory("reconnect")
    adapter = make_adapter(
        sshd, directory=str(directory), port=proxy.port, known_hosts_file=known_hosts
    )
    messages = [testing.make_message() for _ in range(3)]
    try:
        await adapter.send(messages[0])
        proxy.cut()
        for message in messages[1:]:
            for attempt in range(1, 6):
                try:
                    await adapter.send(message.model_copy(update={"attempt": attempt}))
                    break
                except errors.TransientError:
                    await anyio.sleep(0.1)
    finally:
        await adapter.close()
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        f"{m.delivery_id}.json" for m in messages
    )


async def test_inbox_acks_are_read_oldest_first_then_removed_or_set_aside(sshd: Sshd) -> None:
    """receive() yields inbox files oldest first; stored → deleted, unreadable → failed/."""
    inbox = sshd.directory("inbox")
    (inbox / "ack-1.997").write_bytes(b"ISA*00*...997...")
    (inbox / "ack-2.json").write_bytes(b'{"delivery_id": "dlv_1"}')
    (inbox / ".incoming.part").write_bytes(b"still being written")
    os.utime(inbox / "ack-1.997", (1_000_000, 1_000_000))
    adapter = make_adapter(sshd, directory=str(inbox), inbox=str(inbox), inbox_poll="50ms")
    documents = adapter.receive()
    try:
        with anyio.fail_after(5):
            first = await documents.__anext__()
            second = await documents.asend(True)
            assert (first.name, first.content_type) == ("ack-1.997", "application/edi-x12")
            assert first.body == b"ISA*00*...997..."
            assert (second.name, second.content_type) == ("ack-2.json", "application/json")
            (inbox / "ack-3.999").write_bytes(b"999")
            third = await documents.asend(False)
            assert third.name == "ack-3.999"
        await documents.aclose()  # no verdict for the third: it stays in the inbox
    finally:
        await adapter.close()
    assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == [".incoming.part", "ack-3.999"]
    assert [p.name for p in (inbox / "failed").iterdir()] == ["ack-2.json"]


async def test_inbox_acks_are_archived_when_an_archive_is_set(sshd: Sshd) -> None:
    """With archive configured, a stored ack file is moved there rather than deleted."""
    inbox = sshd.directory("inbox")
    archive = sshd.root / "files" / f"archive-{inbox.name}"
    (inbox / "ack.997").write_bytes(b"997")
    adapter = make_adapter(
        sshd, directory=str(inbox), inbox=str(inbox), archive=str(archive), inbox_poll="50ms"
    )
    documents = adapter.receive()
    try:
        with anyio.fail_after(5):
            document = await documents.__anext__()
            assert document.name == "ack.997"
            with anyio.move_on_after(0.3):  # settles it, then waits for more
                await documents.asend(True)
        await documents.aclose()
    finally:
        await adapter.close()
    assert [p.name for p in archive.iterdir()] == ["ack.997"]
    assert not (inbox / "ack.997").exists()
