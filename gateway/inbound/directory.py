"""A directory as a source (legacy drops): poll, take each file, move it after commit.

A file is moved to ``done/`` once its filings are committed (or recognised as
duplicates), or to ``rejected/`` (with ``NAME.reason.txt`` beside it) once it is stored
as a rejected event. A crash in between leaves it in place; the next poll takes it again
and its idempotency key (file name + content hash, or CloudEvent id+source) finds the
filing already there. Names starting with ``.`` or ending ``.tmp``/``.part`` are
skipped: writers should drop files atomically (write elsewhere, then rename).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from pathlib import Path
from typing import Any

import anyio
import structlog

from gateway import errors
from gateway.inbound.intake import Intake, Outcome, RawEvent
from gateway.inbound.normalizers import Source
from gateway.inbound.status import SourceStatus

log = structlog.get_logger("gateway.inbound.directory")

SKIP_SUFFIXES = (".tmp", ".part")


def _move(path: Path, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    target = into / path.name
    n = 1
    while target.exists():
        target = into / f"{path.stem}.{n}{path.suffix}"
        n += 1
    os.replace(path, target)
    return target


class DirectoryConsumer:
    """Polls one ``[sources.NAME] kind = "directory"`` folder until cancelled."""

    def __init__(self, *, source: Source, intake: Intake) -> None:
        assert source.section.directory is not None
        self.source = source
        self.intake = intake
        self.directory = Path(source.section.directory)
        self.status = SourceStatus(kind="directory", target=str(self.directory))

    def pending(self) -> list[Path]:
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        return [
            self.directory / n
            for n in names
            if not n.startswith(".")
            and not n.endswith(SKIP_SUFFIXES)
            and fnmatch.fnmatch(n, self.source.section.pattern)
            and (self.directory / n).is_file()
        ]

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                try:
                    await anyio.to_thread.run_sync(self._ensure_dirs)
                    for path in await anyio.to_thread.run_sync(self.pending):
                        with anyio.CancelScope(shield=True):
                            await self._take(path)
                    self.status.ok()
                except (OSError, errors.Unavailable) as exc:
                    self.status.degraded(f"{type(exc).__name__}: {exc}")
                    log.warning("source.degraded", source=self.source.name, error=str(exc))
                await anyio.sleep(self.source.section.poll_interval)
        finally:
            self.status.state = "stopped"

    def _ensure_dirs(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    async def _take(self, path: Path) -> None:
        body = await anyio.Path(path).read_bytes()
        digest = hashlib.sha256(body).hexdigest()[:32]
        raw = RawEvent(
            body=body,
            origin=f"file:{path.name}",
            event_id=path.name,
            content_type="application/json",
            default_key=f"file:{self.source.name}:{path.name}:{digest}",
        )
        taken = await self.intake.take(self.source, raw)
        self.status.count(taken.outcome)
        if taken.outcome is Outcome.REJECTED:
            moved = await anyio.to_thread.run_sync(_move, path, self.directory / "rejected")
            await anyio.Path(f"{moved}.reason.txt").write_text(f"{taken.reason}\n")
        else:
            await anyio.to_thread.run_sync(_move, path, self.directory / "done")
