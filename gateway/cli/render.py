"""How the CLI draws: tables that fit the terminal, colour only on a TTY.

All of it through ``rich``. On a terminal a table shrinks its free-text columns to the
terminal's width (ids never: an operator copies them) and states are coloured; anywhere
else (a pipe, a file, a CI log) there is no escape code at all and no wrapping, so lines
stay whole for ``grep`` and ``awk``. ``NO_COLOR`` turns colour off on a terminal too.

Progress bars and spinners are in ``gateway.cli.progress``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Collection, Sequence
from typing import Any, TextIO

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

#: width of a table written anywhere but a terminal: as wide as its content
_UNBOUNDED = 10_000

#: a column that gives way keeps at least this many characters (a state word, a time)
_MIN_FOLD = 9

#: colour of a state word wherever it appears (deliveries, filings, callbacks, acks, gaps)
STATE_STYLES = {
    "delivered": "green",
    "acknowledged": "green",
    "accepted": "green",
    "ok": "green",
    "matched": "green",
    "pending": "cyan",
    "in_flight": "cyan",
    "waiting_retry": "yellow",
    "deferred": "yellow",
    "blocked": "yellow",
    "warning": "yellow",
    "unacknowledged": "yellow",
    "open": "yellow",
    "half_open": "yellow",
    "dead": "bold red",
    "rejected": "bold red",
    "unsent": "bold red",
    "unmatched": "red",
    "FAIL": "bold red",
    "NOT OK": "bold red",
    "cancelled": "dim",
}


def is_tty(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def console(stream: TextIO | None = None) -> Console:
    """A console for ``stream`` (stdout by default): colour and the terminal's width on a
    TTY; no escape codes and no wrapping elsewhere (``COLUMNS`` bounds it if set)."""
    stream = stream or sys.stdout
    if is_tty(stream):
        return Console(file=stream, highlight=False, soft_wrap=False)
    width = int(os.environ.get("COLUMNS") or 0) or _UNBOUNDED
    return Console(
        file=stream,
        force_terminal=False,
        color_system=None,
        no_color=True,
        highlight=False,
        width=width,
        soft_wrap=False,
    )


def styled(value: Any) -> Text:
    """A cell: the value as text, coloured when it is a known state word."""
    text = "" if value is None else str(value)
    return Text(text, style=STATE_STYLES.get(text, ""))


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    right: Collection[int] = (),
    keep: Collection[int] = (0,),
    title: str | None = None,
) -> Table:
    """A borderless table. Columns in ``keep`` (ids) never shrink; the others give way,
    folding their text (down to their heading's width, or 9), when the terminal is
    narrower than the table; past that, rich crops at the terminal's edge."""
    t = Table(
        box=None,
        show_edge=False,
        pad_edge=False,
        padding=(0, 2, 0, 0),
        header_style="bold",
        title=title,
        title_justify="left",
        title_style="bold",
    )
    cells = [[styled(c) for c in r] for r in rows]
    for i, h in enumerate(headers):
        widest = max([len(h), *(len(r[i].plain) for r in cells)]) if cells else len(h)
        t.add_column(
            h,
            justify="right" if i in right else "left",
            no_wrap=i in keep,
            min_width=widest if i in keep else min(widest, max(len(h), _MIN_FOLD)),
            overflow="fold",
        )
    for r in cells:
        t.add_row(*r)
    return t


def render(renderable: RenderableType, stream: TextIO | None = None) -> str:
    """The text ``renderable`` prints as on ``stream`` (with escape codes only on a TTY)."""
    con = console(stream)
    with con.capture() as cap:
        con.print(renderable)
    return "\n".join(line.rstrip() for line in cap.get().rstrip("\n").split("\n"))


def out(renderable: RenderableType | str, stream: TextIO | None = None) -> None:
    """Print a table or a line to stdout (or ``stream``)."""
    stream = stream or sys.stdout
    if isinstance(renderable, str):
        print(renderable, file=stream)
    else:
        print(render(renderable, stream), file=stream)


def emit_json(data: Any) -> None:
    """``--json``: the API's answer as is, indented, on stdout."""
    print(json.dumps(data, indent=2, default=str))


def text_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Collection[int] = ()
) -> str:
    """A table as text for stdout: fitted and coloured on a terminal, plain elsewhere."""
    return render(table(headers, rows, right=right))


def format_list(data: dict[str, Any]) -> str:
    rows = []
    for f in data["items"]:
        deliveries = " ".join(f"{d['adapter']}:{d['state']}" for d in f.get("deliveries", []))
        due = (f.get("due_by") or "")[:16]
        rows.append(
            [
                f["id"],
                f["status"],
                f["filing_type"],
                f["environment"],
                f["reference"],
                deliveries,
                f["received_at"][:19],
                f"{due}{' AT RISK' if f.get('at_risk') else ''}",
            ]
        )
    headers = ["ID", "STATUS", "TYPE", "ENV", "REFERENCE", "DELIVERIES", "RECEIVED", "DUE BY"]
    text = text_table(headers, rows) if rows else "no filings match"
    if data.get("next_cursor"):
        text += f"\n(more: --cursor {data['next_cursor']})"
    return text
