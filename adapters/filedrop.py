"""``filedrop``: one file per delivery in a directory, written atomically.

For a VAN client or an MQ bridge that picks files up. The file is written under a
temporary name, fsynced, then renamed to ``<delivery id>.<ext>`` and the directory is
fsynced, so the pickup side never sees a partial file, and a redelivery replaces the
same file instead of adding a second one.

A backlog goes out as concurrent ``send`` calls (the adapter's ``concurrency``), and its
files are group-committed: each send queues its file and waits. A *writer* takes
everything queued as one batch; the batch's files are written under their temporary
names, fsynced and renamed into place by ``_LANES`` threads side by side (the file system
commits fsyncs that overlap together), and then the directory is fsynced once, before
the batch's sends return. A directory fsync makes durable every rename done before it, so
each ``Receipt`` still follows its own file's fsync, its rename and a directory fsync.
At most ``_WRITERS`` batches are written at once. A send that finds a writer slot free
writes one batch, its own file in it, and then hands the slot to a send still waiting in
the queue (or frees it), so no queued file waits for a writer to come. A few threads per
batch, not one thread and one hand-off per send, are what make a backlog cheap: the
event loop hands over a batch, not each file, and a few threads wake and contend for
the interpreter far less than one per send.

With an ``inbox`` directory it also *receives*: acknowledgement files dropped there (a JSON
ack, or a TA1/997/999 interchange) are handed to the gateway one by one, oldest first, and
moved to ``inbox/processed/`` once the gateway has stored them (``inbox/failed/`` when it
could not read them). Write ack files atomically (write elsewhere, then rename into the
inbox); names starting with ``.`` are ignored.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import AsyncGenerator, Callable
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


#: batches being written at once, per directory (see the module's docstring)
_WRITERS = 2
#: threads writing and fsyncing one batch's files side by side
_LANES = 8


@dataclass(eq=False)
class _File:
    """One send's file in the queue: what to write, and how it went."""

    target: Path
    body: bytes
    #: its send holds a writer slot (taken on arrival, or handed over by a writer)
    writer: bool = False
    #: written and durable, or failed with ``error``
    done: bool = False
    error: Exception | None = None
    #: set when ``writer`` or ``done`` changes; a fresh one for each wait
    changed: anyio.Event = field(default_factory=anyio.Event)

    async def until(self, ready: Callable[[], bool]) -> None:
        while not ready():
            self.changed = anyio.Event()
            await self.changed.wait()


@dataclass
class _Batcher:
    """The group commit of one directory's files (see the module's docstring)."""

    directory: Path
    fsync: bool
    queue: list[_File] = field(default_factory=list)
    writers: int = 0

    async def put(self, target: Path, body: bytes) -> None:
        """Return once ``body`` is durable at ``target``; raise what failed it if not.

        A send cancelled before it starts queues nothing; once queued it is shielded from
        cancellation, as a thread's write is: a queued file is written whatever happens to
        its send, and a writer slot handed to a send must be passed on.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        item = _File(target, body)
        self.queue.append(item)
        with anyio.CancelScope(shield=True):
            if self.writers < _WRITERS:
                self.writers += 1
                item.writer = True
            await item.until(lambda: item.writer or item.done)
            if item.writer:
                await self._write_one_batch()
            await item.until(lambda: item.done)
        if item.error is not None:
            raise item.error

    async def _write_one_batch(self) -> None:
        """As a writer: write everything queued, then hand the slot on or give it back.

        The queue may be empty by now (another writer took this send's file with its
        batch); the slot is handed on all the same."""
        await anyio.lowlevel.checkpoint()  # sends started in the same tick join the batch
        batch, self.queue = self.queue, []
        try:
            if batch:
                await self._write_batch(batch)
        except Exception as exc:  # not a file's OSError: each send of the batch raises it
            for item in batch:
                item.error = item.error or exc
        finally:
            for item in batch:
                item.done = True
                item.changed.set()
            self._hand_on()

    def _hand_on(self) -> None:
        """Give this writer slot to a queued send that holds none, or free it."""
        waiting = next((item for item in self.queue if not item.writer), None)
        if waiting is None:
            self.writers -= 1
        else:
            waiting.writer = True
            waiting.changed.set()

    async def _write_batch(self, batch: list[_File]) -> None:
        """Each file written, fsynced and renamed, in ``_LANES`` threads side by side (the
        file system commits their fsyncs together), then one directory fsync for the
        renames; a file that failed carries its error, and a failed directory fsync fails
        every file of the batch."""
        async with anyio.create_task_group() as tg:
            for files in _lanes(batch):
                tg.start_soon(anyio.to_thread.run_sync, self._write_files, files)
        if self.fsync and any(item.error is None for item in batch):
            try:
                await anyio.to_thread.run_sync(_fsync_dir, self.directory)
            except OSError as exc:
                for item in batch:
                    item.error = item.error or exc

    def _write_files(self, files: list[_File]) -> None:
        """On a worker thread: write ``files`` one after another, each error kept with its file."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            for item in files:
                item.error = exc
            return
        for item in files:
            try:
                _write_file(item.target, item.body, self.fsync)
            except OSError as exc:
                item.error = exc


def _lanes(batch: list[_File]) -> list[list[_File]]:
    """The batch dealt round the lanes, except that files for one name (a delivery sent
    again while its first send still waits) share a lane, in queue order, so the last one
    sent is the one left in place."""
    lanes: list[list[_File]] = [[] for _ in range(min(_LANES, len(batch)))]
    lane_of: dict[Path, int] = {}
    for k, item in enumerate(batch):
        lanes[lane_of.setdefault(item.target, k % len(lanes))].append(item)
    return lanes


#: numbers the temporary files, so two writes never share one (even of the same delivery)
_TEMPORARY = itertools.count()


def _write_file(target: Path, body: bytes, fsync: bool) -> None:
    """``body`` under a temporary name, fsynced (with ``fsync``), then renamed to ``target``."""
    tmp = target.parent / f".{target.name}.{os.getpid()}.{next(_TEMPORARY)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


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
        self._batchers: dict[Path, _Batcher] = {}

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
        batcher = self._batchers.get(target.parent)
        if batcher is None:
            batcher = self._batchers[target.parent] = _Batcher(target.parent, self.options.fsync)
        try:
            await batcher.put(target, message.body)
        except OSError as exc:
            raise errors.TransientError(f"writing {target} failed: {exc}") from exc
        return models.Receipt(
            transport_id=target.name,
            status="written",
            detail={"path": str(target), "bytes": len(message.body)},
        )

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
