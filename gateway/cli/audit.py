"""``edi-gateway audit verify | export | prune``: the audit trail's operator tools.

``verify`` (``gateway.audit.verify``) streams the chain from the store (constant memory)
and checks it against its own chain's checkpoints; ``verify --file`` checks an export
offline. ``export``
writes JSON Lines (see ``gateway.audit.export``). ``prune`` removes rows older than a
date, never younger than ``[audit] retention``, and leaves an ``audit.pruned`` anchor
plus a fresh signed checkpoint so the rest still verifies.

The commands live in ``cli/verify.py``, ``cli/exporting.py`` and ``cli/pruning.py``.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.cli import verify as cli_verify
from gateway.cli.exporting import cmd_export
from gateway.cli.pruning import cmd_prune


def when(text: str) -> datetime:
    """argparse type: ``2026-01-06`` or an ISO 8601 time (UTC unless it says otherwise)."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (write 2026-01-06 or 2026-01-06T12:00:00Z)"
        ) from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def add_parsers(audit_sub: Any, add_config: Any) -> None:
    """The ``audit`` sub-commands, added to the CLI's parser."""
    pv = audit_sub.add_parser(
        "verify", help="walk the hash chain (or an export with --file); exit 1 at the first bad row"
    )
    add_config(pv)
    pv.add_argument("--file", type=Path, help="verify an export file offline instead")
    pv.add_argument("--json", action="store_true")

    pe = audit_sub.add_parser("export", help="write audit rows as JSON Lines (verifiable offline)")
    add_config(pe)
    pe.add_argument("--output", "-o", default="-", help="file to write (default: stdout)")
    pe.add_argument("--since", type=when, help="rows at or after this time")
    pe.add_argument("--until", type=when, help="rows before this time")
    pe.add_argument("--filing", action="append", help="rows of this filing id (repeatable)")
    pe.add_argument("--reference", help="rows of the filings with this reference")
    pe.add_argument("--adapter", help="rows about this adapter")

    pp = audit_sub.add_parser("prune", help="remove rows older than DATE (never inside retention)")
    add_config(pp)
    pp.add_argument("--before", type=when, required=True, help="remove rows older than this")
    pp.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    commands = {"verify": cmd_verify, "export": cmd_export, "prune": cmd_prune}
    return commands[args.audit_command](args)


cmd_verify = cli_verify.cmd_verify
