"""``sftp``: upload each delivery to a directory on an SFTP server (a VAN or partner drop box).

Key authentication only (``private_key_file``), and the server's host key is checked
against ``known_hosts_file``: there is no blind accept, and a key that does not match is a
``PermanentError`` that says so (a re-keyed server or not the server you think; an
operator must look before anything is sent).

Each delivery is written to a dot-named temporary file in ``directory``, fsynced where the
server supports it (OpenSSH's ``fsync@openssh.com``), then renamed over
``<delivery id>.<ext>`` with ``posix-rename@openssh.com``. The pickup side never sees a
partial file under the final name, and a redelivery overwrites the same name instead of
adding a second file. A send that fails or is cancelled removes its temporary file.

With ``inbox`` set, ``receive()`` polls that directory for ack files (oldest first, names
starting with ``.`` ignored) and yields them as ``adapters.inbound.InboundDocument``; a
stored one is moved to ``archive`` (or deleted when no archive is configured), an
unreadable one to ``<inbox>/failed``.

asyncssh's exceptions never leave this module: ``_translated`` maps them with a table,
``from exc``.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import uuid
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path

import anyio
import asyncssh
from pydantic import Field, field_validator, model_validator

from adapters import base, inbound
from adapters.base import Duration
from gateway import errors, models

_EXTENSIONS = {
    "application/json": "json",
    "application/edi-x12": "x12",
    "application/edifact": "edi",
    "text/plain": "txt",
}
_ACK_TYPES = {
    "json": "application/json",
    "x12": "application/edi-x12",
    "edi": "application/edi-x12",
    "997": "application/edi-x12",
    "999": "application/edi-x12",
    "ta1": "application/edi-x12",
}

#: library exception → (our error, what it means); the first match wins, so order matters
_ERROR_TABLE: tuple[tuple[type[BaseException], type[errors.DeliveryError], str], ...] = (
    (
        asyncssh.HostKeyNotVerifiable,
        errors.PermanentError,
        "host key does not match known_hosts_file: refusing to connect "
        "(server re-keyed, or not the server you think; check and update known_hosts)",
    ),
    (asyncssh.PermissionDenied, errors.PermanentError, "key authentication refused"),
    (asyncssh.SFTPPermissionDenied, errors.PermanentError, "permission denied"),
    (asyncssh.SFTPNoSuchFile, errors.PermanentError, "no such file or directory"),
    (asyncssh.SFTPNoSuchPath, errors.PermanentError, "no such path"),
    (asyncssh.SFTPNotADirectory, errors.PermanentError, "not a directory"),
    (asyncssh.SFTPNoSpaceOnFilesystem, errors.TransientError, "server disk full"),
    (asyncssh.SFTPQuotaExceeded, errors.TransientError, "quota exceeded"),
    (asyncssh.SFTPError, errors.TransientError, "SFTP error"),
    (asyncssh.DisconnectError, errors.TransientError, "disconnected"),
    (asyncssh.ChannelOpenError, errors.TransientError, "cannot open the SFTP channel"),
    (asyncssh.Error, errors.TransientError, "SSH error"),
    (TimeoutError, errors.TransientError, "no answer in time"),
    (OSError, errors.TransientError, "server unreachable"),
)
_LIBRARY_ERRORS = tuple(exc_type for exc_type, _, _ in _ERROR_TABLE)
#: errors after which the connection is dropped and made again on the next use
_CONNECTION_ERRORS = (asyncssh.DisconnectError, asyncssh.SFTPConnectionLost, OSError)


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    """Re-raise asyncssh/socket errors as our taxonomy, ``from exc``."""
    try:
        yield
    except _LIBRARY_ERRORS as exc:
        for exc_type, error_type, meaning in _ERROR_TABLE:
            if isinstance(exc, exc_type):
                detail = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
                raise error_type(f"{what}: {meaning}: {detail}") from exc
        raise  # pragma: no cover - the table covers _LIBRARY_ERRORS


class SftpOptions(base.AdapterOptions):
    host: str = Field(min_length=1, description="SFTP server host name or address")
    port: int = Field(default=22, ge=1, le=65535, description="SSH port")
    username: str = Field(min_length=1, description="login name")
    private_key_file: Path = Field(description="the client's private key (OpenSSH format)")
    passphrase_env: str | None = Field(
        default=None, description="env var holding the private key's passphrase, if any"
    )
    known_hosts_file: Path = Field(description="known_hosts with the server's host key")
    directory: str = Field(min_length=1, description="remote directory uploads go to")
    extension: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9]{1,10}$", description="file extension; by content type"
    )
    fsync: bool = Field(default=True, description="fsync on the server before the rename")
    timeout: Duration = Field(default=30.0, gt=0, description="connect / per-upload timeout")
    inbox: str | None = Field(default=None, description="remote directory receive() polls")
    archive: str | None = Field(
        default=None, description="where read inbox files go; deleted when not set"
    )
    inbox_poll: Duration = Field(default=5.0, gt=0, description="how often the inbox is listed")

    @field_validator("private_key_file", "known_hosts_file")
    @classmethod
    def _exists(cls, path: Path) -> Path:
        if not path.is_file():
            raise ValueError(f"{path} does not exist or is not a file")
        return path

    @model_validator(mode="after")
    def _archive_needs_inbox(self) -> SftpOptions:
        if self.archive is not None and self.inbox is None:
            raise ValueError("archive needs inbox")
        return self


class SftpAdapter(base.BaseAdapter):
    """Uploads each delivery atomically to ``directory/<delivery_id>.<ext>``."""

    Options = SftpOptions

    def __init__(self, *, name: str, options: SftpOptions) -> None:
        super().__init__(name=name, options=options)
        self.options: SftpOptions = options
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._lock = anyio.Lock()

    @property
    def where(self) -> str:
        o = self.options
        return f"sftp://{o.username}@{o.host}:{o.port}"

    async def open(self) -> None:
        await self._client()

    async def _client(self) -> asyncssh.SFTPClient:
        """The SFTP client on a live connection, connecting (once, under a lock) if needed."""
        async with self._lock:
            if self._sftp is not None and self._conn is not None and not self._conn.is_closed():
                return self._sftp
            await self._drop()
            o = self.options
            passphrase = None
            if o.passphrase_env is not None:
                passphrase = os.environ.get(o.passphrase_env)
                if not passphrase:
                    raise errors.PermanentError(
                        f"env var {o.passphrase_env} (key passphrase) is not set"
                    )
            with _translated(f"connecting to {self.where}"), anyio.fail_after(o.timeout):
                conn = await asyncssh.connect(
                    o.host,
                    o.port,
                    username=o.username,
                    client_keys=[str(o.private_key_file)],
                    passphrase=passphrase,
                    known_hosts=str(o.known_hosts_file),
                    agent_path=None,
                    config=[],
                    password=None,
                    kbdint_auth=False,
                    connect_timeout=o.timeout,
                )
                started = False
                try:
                    self._sftp = await conn.start_sftp_client()
                    started = True
                finally:
                    if not started:  # failed or cancelled: do not leak the connection
                        conn.close()
                self._conn = conn
            return self._sftp

    async def _drop(self) -> None:
        """Forget (and close) the current connection."""
        conn, self._conn, self._sftp = self._conn, None, None
        if conn is not None:
            conn.close()
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await conn.wait_closed()

    def filename(self, message: models.OutboundMessage) -> str:
        ext = self.options.extension or _EXTENSIONS.get(
            message.content_type.split(";")[0].strip(), "dat"
        )
        return f"{message.delivery_id}.{ext}"

    async def send(self, message: models.OutboundMessage) -> models.Receipt:
        sftp = await self._client()
        name = self.filename(message)
        target = posixpath.join(self.options.directory, name)
        temp = posixpath.join(self.options.directory, f".{name}.{uuid.uuid4().hex[:12]}.part")
        done = False
        try:
            with (
                _translated(f"uploading {target} to {self.where}"),
                anyio.fail_after(self.options.timeout),
            ):
                async with sftp.open(temp, "wb") as remote:
                    await remote.write(message.body)
                    if self.options.fsync:
                        with contextlib.suppress(asyncssh.SFTPOpUnsupported):
                            await remote.fsync()
                await _replace(sftp, temp, target)
            done = True
        except errors.TransientError as exc:
            if isinstance(exc.__cause__, _CONNECTION_ERRORS):
                await self._drop()
            raise
        finally:
            if not done:  # failed or cancelled: take the temporary file away
                await self._remove_quietly(sftp, temp)
        return models.Receipt(
            transport_id=name,
            status="uploaded",
            detail={"path": target, "bytes": len(message.body)},
        )

    async def _remove_quietly(self, sftp: asyncssh.SFTPClient, path: str) -> None:
        with (
            anyio.CancelScope(shield=True),
            anyio.move_on_after(min(5.0, self.options.timeout)),
            contextlib.suppress(*_LIBRARY_ERRORS),
        ):
            await sftp.remove(path)

    async def receive(self) -> AsyncGenerator[inbound.InboundDocument, bool | None]:
        """Ack files from ``inbox``; verdict True/None → archive or delete, False → failed/."""
        inbox = self.options.inbox
        if inbox is None:
            await anyio.sleep_forever()
            return
        failed = posixpath.join(inbox, "failed")
        while True:
            sftp = await self._client()
            with _translated(f"listing {inbox} on {self.where}"):
                for directory in (failed, self.options.archive):
                    if directory is not None:
                        await sftp.makedirs(directory, exist_ok=True)
                entries = [
                    e
                    async for e in sftp.scandir(inbox)
                    if e.attrs.type == asyncssh.FILEXFER_TYPE_REGULAR
                    and not str(e.filename).startswith(".")
                ]
            if not entries:
                await anyio.sleep(self.options.inbox_poll)
                continue
            entries.sort(key=lambda e: (e.attrs.mtime or 0, str(e.filename)))
            for entry in entries:
                name = str(entry.filename)
                path = posixpath.join(inbox, name)
                try:
                    with _translated(f"reading {path} on {self.where}"):
                        async with sftp.open(path, "rb") as remote:
                            body: bytes = await remote.read()
                except errors.PermanentError:
                    continue  # taken by another reader meanwhile
                ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
                verdict = yield inbound.InboundDocument(
                    name=name, content_type=_ACK_TYPES.get(ext, "text/plain"), body=body
                )
                with _translated(f"settling {path} on {self.where}"):
                    if verdict is False:
                        await _replace(sftp, path, posixpath.join(failed, name))
                    elif self.options.archive is not None:
                        await _replace(sftp, path, posixpath.join(self.options.archive, name))
                    else:
                        await sftp.remove(path)

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    async def check(self) -> models.Health:
        try:
            sftp = await self._client()
            with _translated(f"checking {self.options.directory} on {self.where}"):
                with anyio.fail_after(self.options.timeout):
                    is_dir = await sftp.isdir(self.options.directory)
        except errors.DeliveryError as exc:
            return models.Health(ok=False, detail=str(exc))
        if not is_dir:
            return models.Health(ok=False, detail=f"{self.options.directory} is not a directory")
        return models.Health(ok=True, detail=f"{self.where}{self.options.directory} reachable")


async def _replace(sftp: asyncssh.SFTPClient, source: str, target: str) -> None:
    """Rename ``source`` over ``target`` atomically (posix-rename), overwriting it."""
    try:
        await sftp.posix_rename(source, target)
    except asyncssh.SFTPOpUnsupported:  # a server without the OpenSSH extension
        await sftp.rename(source, target, flags=asyncssh.FXR_OVERWRITE)
