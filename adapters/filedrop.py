"""``filedrop``: one file per delivery in a directory, written atomically.

For a VAN client or an MQ bridge that picks files up. The file is written under a
temporary name, fsynced, then renamed to ``<delivery id>.<ext>`` and the directory is
fsynced, so the pickup side never sees a partial file, and a redelivery replaces the
same file instead of adding a second one.

A backlog goes out as concurrent ``send`` calls (the adapter's ``concurrency``): each
writes and fsyncs its own file on a worker thread, so several files are written and
fsynced at once, and the directory fsyncs are shared. A directory fsync makes durable
every rename that completed before it started; so a send whose rename is done waits for
the running directory fsync (which may have started before its rename, and then does not
cover it) and then, unless a later one already covered it, runs one itself on behalf of
every rename done by then. Concurrent sends thus share one directory fsync per batch, and
each still returns its ``Receipt`` only after its own file and its own rename are durable.

With an ``inbox`` directory it also *receives*: acknowledgement files dropped there (a JSON
ack, or a TA1/997/999 interchange) are handed to the gateway one by one, oldest first, and
moved to ``inbox/processed/`` once the gateway has stored them (``inbox/failed/`` when it
could not read them). Write ack files atomically (write elsewhere, then rename into the
inbox); names starting with ``.`` are ignored.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from pydantic import Field

from adapters import base
from adapters.base import Duration
from gateway import errors, models

_EXTENSIONS = {
    "application/json": "json",
    "application/edi-x12": "x12",
    "application/edifact": "edi",
    "text/plain": "txt",
}


class FiledropOptions(base.AdapterOptions):
    directory: Path = Field(description="where files are written (created if missing)")
    extension: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9]{1,10}$", description="file extension; by content type"
    )
    fsync: bool = Field(default=True, description="fsync file and directory before success")
    inbox: Path | None = Field(
        default=None, description="where ack files are dropped for the gateway to read"
    )
    inbox_poll: Duration = Field(default=1.0, gt=0, description="how often the inbox is scanned")


_ACK_TYPES = {
    "json": "application/json",
    "x12": "application/edi-x12",
    "edi": "application/edi-x12",
    "997": "application/edi-x12",
    "999": "application/edi-x12",
    "ta1": "application/edi-x12",
}


@dataclass
class _DirSync:
    """Group commit of one directory's fsync (see the module's docstring).

    ``renamed`` counts the renames completed into the directory (in event-loop order),
    ``synced`` how many of them a finished directory fsync covers.
    """

    lock: anyio.Lock = field(default_factory=anyio.Lock)
    renamed: int = 0
    synced: int = 0

    async def durable(self, directory: Path, ticket: int) -> None:
        """Return once a directory fsync that started after rename number ``ticket`` is done."""
        async with self.lock:
            if self.synced >= ticket:
                return  # a sync that started after our rename finished while we waited
            covered = self.renamed
            await anyio.to_thread.run_sync(_fsync_dir, directory)
            self.synced = max(self.synced, covered)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FiledropAdapter(base.BaseAdapter):
    """Writes each delivery to ``directory/<delivery_id>.<ext>``."""

    Options = FiledropOptions

    def __init__(self, *, name: str, options: FiledropOptions) -> None:
        super().__init__(name=name, options=options)
        self.options: FiledropOptions = options
        self._dirs: dict[Path, _DirSync] = {}

    async def open(self) -> None:
        try:
            await anyio.to_thread.run_sync(self._prepare)
        except OSError as exc:
            raise errors.TransientError(f"cannot use {self.options.directory}: {exc}") from exc

    def _prepare(self) -> None:
        self.options.directory.mkdir(parents=True, exist_ok=True)

    def path_for(self, message: models.OutboundMessage) -> Path:
        ext = self.options.extension or _EXTENSIONS.get(
            message.content_type.split(";")[0].strip(), "dat"
        )
        return self.options.directory / f"{message.delivery_id}.{ext}"

    async def send(self, message: models.OutboundMessage) -> models.Receipt:
        target = self.path_for(message)
        try:
            await anyio.to_thread.run_sync(self._write, target, message.body)
            if self.options.fsync:
                sync = self._dirs.setdefault(target.parent, _DirSync())
                sync.renamed += 1
                await sync.durable(target.parent, sync.renamed)
        except OSError as exc:
            raise errors.TransientError(f"writing {target} failed: {exc}") from exc
        return models.Receipt(
            transport_id=target.name,
            status="written",
            detail={"path": str(target), "bytes": len(message.body)},
        )

    def _write(self, target: Path, body: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(body)
                if self.options.fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    async def receive(self) -> AsyncGenerator[models.InboundDocument, bool | None]:
        """Ack files from ``inbox``; the gateway sends back True (stored) or False (unreadable)."""
        inbox = self.options.inbox
        if inbox is None:
            await anyio.sleep_forever()
            return
        try:
            await anyio.to_thread.run_sync(_make_dirs, inbox)
        except OSError as exc:
            raise errors.TransientError(f"cannot use inbox {inbox}: {exc}") from exc
        while True:
            found = await anyio.to_thread.run_sync(_waiting, inbox)
            if not found:
                await anyio.sleep(self.options.inbox_poll)
                continue
            for path in found:
                try:
                    body = await anyio.to_thread.run_sync(path.read_bytes)
                except FileNotFoundError:
                    continue  # taken by another gateway process sharing the inbox
                ext = path.suffix.lstrip(".").lower()
                verdict = yield models.InboundDocument(
                    name=path.name, content_type=_ACK_TYPES.get(ext, "text/plain"), body=body
                )
                where = "failed" if verdict is False else "processed"
                await anyio.to_thread.run_sync(_move, path, inbox / where)

    async def check(self) -> models.Health:
        directory = self.options.directory
        ok = await anyio.to_thread.run_sync(
            lambda: directory.is_dir() and os.access(directory, os.W_OK)
        )
        return models.Health(ok=ok, detail=f"{directory} {'writable' if ok else 'not writable'}")


def _make_dirs(inbox: Path) -> None:
    for sub in ("processed", "failed"):
        (inbox / sub).mkdir(parents=True, exist_ok=True)


def _waiting(inbox: Path) -> list[Path]:
    files = [p for p in inbox.iterdir() if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))


def _move(path: Path, directory: Path) -> None:
    target = directory / path.name
    if target.exists():
        target = directory / f"{path.stem}.{time.time_ns()}{path.suffix}"
    try:
        os.replace(path, target)
    except FileNotFoundError:
        pass
