"""Where segments live: a tiny storage interface and its directory backend.

The interface is four calls on whole, immutable objects (``put``, ``get``, ``list``,
``delete``), so an object store (S3, GCS, Azure Blob) is a small addition: its ``put`` is one
PUT (object stores publish an object whole or not at all), ``list`` a prefix listing.

The directory backend (any mounted storage) makes ``put`` atomic the POSIX way: the bytes go
to a temporary name starting with ``.tmp-``, are fsynced, renamed to the final name and the
directory is fsynced. A kill at any point leaves either no file under the final name or the
whole file; the temporary leftovers of a killed writer are deleted when the directory is
opened again. A writer holds an exclusive ``flock`` on its temporary file until it is
renamed, and the kernel drops it when the writer dies: opening the directory (a CLI
``records verify`` beside a running archiver) deletes only the files nobody holds. The calls
block: async callers run them in a worker thread (``anyio.to_thread.run_sync``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
from pathlib import Path
from typing import Protocol

from gateway.records import errors

#: a segment name: letters, digits, ``.``, ``_``, ``-``; never hidden, never a path
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
TEMP_PREFIX = ".tmp-"


def check_name(name: str) -> str:
    """``name`` if it is a valid segment name, else ``BadName`` naming it."""
    if not isinstance(name, str) or not NAME.fullmatch(name) or ".." in name:
        raise errors.BadName(f"{name!r} is not a segment name (letters, digits, . _ -)")
    return name


class SegmentStorage(Protocol):
    """Whole, immutable objects by name. ``put`` is atomic: a reader sees all or nothing."""

    def put(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name``. The same bytes again is a no-op; other bytes under
        an existing name is refused (segments are immutable)."""

    def get(self, name: str) -> bytes:
        """The bytes stored under ``name``; ``SegmentMissing`` if there are none."""

    def list(self) -> list[str]:
        """Every stored name, sorted."""

    def delete(self, name: str) -> None:
        """Remove ``name``; a missing name is not an error (a retried purge)."""


class DirectoryStorage:
    """Segments as files in one directory (created if missing)."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root)
        #: fsync file and directory (off only for throwaway benchmarks)
        self.fsync = fsync
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise errors.StorageError(f"cannot create {self.root}: {exc.strerror}") from exc
        #: temporary files of a writer killed mid-put, deleted on open
        self.cleaned = self.clean()

    def clean(self) -> list[str]:
        """Delete the ``.tmp-`` leftovers of killed writers; their names."""
        removed = []
        for entry in os.scandir(self.root):
            if entry.name.startswith(TEMP_PREFIX) and entry.is_file(follow_symlinks=False):
                try:
                    fd = os.open(entry.path, os.O_RDONLY)
                except FileNotFoundError:
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer holds it
                else:
                    with contextlib.suppress(FileNotFoundError):
                        # still the file opened (not renamed to its final name meanwhile)
                        if os.stat(entry.path).st_ino == os.fstat(fd).st_ino:
                            os.unlink(entry.path)
                            removed.append(entry.name)
                finally:
                    os.close(fd)
        if removed:
            self._sync_dir()
        return sorted(removed)

    def path(self, name: str) -> Path:
        return self.root / check_name(name)

    def put(self, name: str, data: bytes) -> None:
        final = self.path(name)
        if final.exists():
            if final.read_bytes() == data:
                return
            raise errors.StorageError(f"segment {name!r} exists with other bytes; not replaced")
        temp = self.root / f"{TEMP_PREFIX}{name}.{secrets.token_hex(4)}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if os.fstat(fd).st_ino != os.stat(temp).st_ino:
                    raise FileNotFoundError(2, "the temporary file was cleaned away")
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if self.fsync:
                    os.fsync(fd)
                os.replace(temp, final)  # still holding the lock: no cleaner takes it
            finally:
                os.close(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise errors.StorageError(f"cannot write segment {name!r}: {exc.strerror}") from exc
        self._sync_dir()

    def get(self, name: str) -> bytes:
        try:
            return self.path(name).read_bytes()
        except FileNotFoundError:
            raise errors.SegmentMissing(segment=name) from None
        except OSError as exc:
            raise errors.StorageError(f"cannot read segment {name!r}: {exc.strerror}") from exc

    def list(self) -> list[str]:
        return sorted(
            entry.name
            for entry in os.scandir(self.root)
            if not entry.name.startswith(".")
            and NAME.fullmatch(entry.name)
            and entry.is_file(follow_symlinks=False)
        )

    def delete(self, name: str) -> None:
        try:
            os.unlink(self.path(name))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise errors.StorageError(f"cannot delete segment {name!r}: {exc.strerror}") from exc
        self._sync_dir()

    def _sync_dir(self) -> None:
        if not self.fsync:
            return
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
