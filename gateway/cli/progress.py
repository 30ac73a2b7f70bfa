"""How the CLI shows a long operation: on a terminal a live bar with the rate and the time
left (``Progress``) or a spinner (``Spinner``); elsewhere one plain line per step."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress

from gateway.cli.render import is_tty


class Progress:
    """Progress of long work on stderr: on a terminal a live bar with count, rate and
    time left; elsewhere one line per step, ``[###...] done/total verb · rate · ETA``."""

    def __init__(self, total: int, verb: str, stream: TextIO | None = None) -> None:
        self.total, self.verb, self.done = total, verb, 0
        self.stream = stream or sys.stderr
        self.tty = is_tty(self.stream)
        self.started = time.monotonic()
        self._bar: RichProgress | None = None
        if self.tty:
            self._bar = RichProgress(
                TextColumn(f"[bold]{verb}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TimeElapsedColumn(),
                console=Console(file=self.stream, highlight=False),
                transient=False,
            )
            self._task = self._bar.add_task(verb, total=total or None, rate="")
            self._bar.start()

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta_s(self) -> float | None:
        r = self.rate()
        return None if r <= 0 else max(self.total - self.done, 0) / r

    def advance(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n, rate=f"{self.rate():.1f}/s")
            return
        width = 30
        filled = width if self.total == 0 else min(width, width * self.done // self.total)
        eta = self.eta_s()
        eta_text = "-" if eta is None else time.strftime("%H:%M:%S", time.gmtime(eta))
        self.stream.write(
            f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {self.verb}"
            f" · {self.rate():.1f}/s · ETA {eta_text}\n"
        )
        self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


class Spinner:
    """An indeterminate bar with elapsed time on a terminal (work of unknown length, such
    as a migration applied in one transaction); nothing elsewhere."""

    def __init__(self, text: str, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._bar: RichProgress | None = None
        if is_tty(self.stream):
            self._bar = RichProgress(
                TextColumn(f"[bold]{text}"),
                BarColumn(),
                TimeElapsedColumn(),
                console=Console(file=self.stream, highlight=False),
                transient=True,
            )
            self._bar.add_task(text, total=None)

    def __enter__(self) -> Spinner:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
