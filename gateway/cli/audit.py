"""``edi-gateway audit verify | export | prune``: the audit trail's operator tools.

``verify`` (``gateway.audit.verify``) streams the chain from the store (constant memory)
and checks it against its own chain's checkpoints; ``verify --file`` checks an export
offline. ``export``
writes JSON Lines (see ``gateway.audit.export``). ``prune`` removes rows older than a
date, never younger than ``[audit] retention``, and leaves an ``audit.pruned`` anchor
plus a fresh signed checkpoint so the rest still verifies.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import anyio

from gateway import config, errors
from gateway.audit import chain as audit
from gateway.audit import checkpoints
from gateway.audit import export as audit_export
from gateway.audit import verify as audit_verify
from gateway.cli import verify as cli_verify
from gateway.cli.client import EXIT_FAILED, EXIT_OK, EXIT_REFUSED
from gateway.store import base
from gateway.store import open as store_open


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


def _emit(args: argparse.Namespace, data: dict[str, Any], human: str) -> None:
    print(json.dumps(data, indent=2) if getattr(args, "json", False) else human)


cmd_verify = cli_verify.cmd_verify


# --- export -------------------------------------------------------------------------------


class _Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.on = stream.isatty()
        self._last = 0.0

    def update(self, scanned: int, written: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not self.on or (not final and now - self._last < 0.1):
            return
        self._last = now
        share = min(scanned / self.total, 1.0)
        bar = "#" * int(share * 30)
        self.stream.write(
            f"\rexporting [{bar:<30}] {share:4.0%} {scanned:,}/{self.total:,} rows, "
            f"{written:,} written"
        )
        if final:
            self.stream.write("\n")
        self.stream.flush()


def cmd_export(args: argparse.Namespace) -> int:
    cfg = config.load_config(args.config)
    key = audit_verify.key_or_warn(cfg, create=False)
    if key is None:
        print("warning: no audit HMAC key: the export is not sealed", file=sys.stderr)
    directory = (
        None if key is None else checkpoints.CheckpointDir(checkpoints.directory(cfg), key=key)
    )
    described: dict[str, Any] = {
        k: v
        for k, v in (
            ("since", args.since and audit_export.iso(args.since)),
            ("until", args.until and audit_export.iso(args.until)),
            ("filing", args.filing),
            ("reference", args.reference),
            ("adapter", args.adapter),
        )
        if v
    }

    async def _run(out: TextIO) -> int:
        store = store_open.open_store(cfg.gateway.store)
        await store.open()
        try:
            ev = await audit_verify.gather(store, directory)  # this chain's newest only
            if ev.bad:
                print(
                    f"warning: skipping a checkpoint that does not authenticate: {ev.bad[0]}",
                    file=sys.stderr,
                )
            newest = ev.signed[-1].signed(key) if ev.signed and key is not None else None
            ids = set(args.filing or [])
            if args.reference:
                ids |= await _filings_of(store, args.reference)
            flt = audit_export.ExportFilter(
                since=args.since,
                until=args.until,
                filing_ids=frozenset(ids) if (args.filing or args.reference) else None,
                adapter=args.adapter,
                described=described,
            )
            head = await store.audit_head()
            head_seq = head[0] if head else 0
            writer = audit_export.ExportWriter(out, key=key)
            writer.header(
                flt=flt, head_seq=head_seq, checkpoint=newest, exported_at=datetime.now(UTC)
            )
            progress = _Progress(head_seq, sys.stderr)
            scanned = 0
            async for row in store.audit_rows():
                if row.seq > head_seq:
                    break
                scanned += 1
                if flt.matches(row):
                    writer.row(row)
                progress.update(scanned, writer.rows)
            progress.update(scanned, writer.rows, final=True)
            writer.trailer()
            return writer.rows
        finally:
            await store.close()

    with ExitStack() as stack:
        out: TextIO = sys.stdout
        if args.output != "-":
            out = stack.enter_context(open(args.output, "w", encoding="utf-8"))
        written = anyio.run(_run, out)
    if args.output != "-":
        print(f"exported {written} rows to {args.output}", file=sys.stderr)
    return EXIT_OK


async def _filings_of(store: base.Store, reference: str) -> set[str]:
    found: set[str] = set()
    cursor = None
    while True:
        page = await store.list_filings(
            base.ListFilter(reference=reference), limit=500, cursor=cursor
        )
        found |= {item.id for item in page.items}
        if not page.next_cursor:
            return found
        cursor = page.next_cursor


# --- prune --------------------------------------------------------------------------------


def cmd_prune(args: argparse.Namespace) -> int:
    cfg = config.load_config(args.config)
    now = datetime.now(UTC)
    oldest_allowed = now - timedelta(seconds=cfg.audit.retention)
    if args.before > oldest_allowed:
        print(
            f"refused: --before {audit_export.iso(args.before)} would remove rows younger than "
            f"the retention ({cfg.audit.retention / 86400:g} days); the latest allowed is "
            f"{audit_export.iso(oldest_allowed)}",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    key = audit_verify.key_or_warn(cfg, create=True)
    assert key is not None
    directory = checkpoints.CheckpointDir(checkpoints.directory(cfg), key=key)

    async def _run() -> tuple[audit.VerifyResult, base.PruneResult | None]:
        store = store_open.open_store(cfg.gateway.store)
        await store.open()
        try:
            version = await store.schema_version()
            if version != base.SCHEMA_VERSION:
                raise errors.StoreError(
                    f"the database schema is v{version}; run `edi-gateway migrate` first"
                )
            ev = await audit_verify.gather(store, directory)
            if ev.bad:
                reason = f"a checkpoint does not authenticate: {ev.bad[0]}"
                return audit.VerifyResult(False, 0, "", 0, reason), None
            checked, _ = await audit_verify.walk(store, ev.signed)
            if not checked.ok:
                return checked, None
            actor = base.Actor(name=f"cli:{getpass.getuser()}")
            pruned = await store.prune_audit(before=args.before, actor=actor, now=now)
            await _sign_after_prune(store, directory, ev.chain, cfg.gateway.store, now, pruned)
            return checked, pruned
        finally:
            await store.close()

    checked, pruned = anyio.run(_run)
    if pruned is None:
        print(
            f"refused: the trail does not verify (row {checked.first_bad_seq}: "
            f"{checked.reason}); pruning would destroy the evidence"
            if checked.first_bad_seq
            else f"refused: {checked.reason}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    data = {
        "removed": pruned.removed,
        "first_seq": pruned.first_seq,
        "last_seq": pruned.last_seq,
        "anchor_seq": pruned.anchor_seq,
        "before": audit_export.iso(args.before),
    }
    if not pruned.removed:
        _emit(args, data, f"nothing older than {audit_export.iso(args.before)} to prune")
    else:
        _emit(
            args,
            data,
            f"pruned {pruned.removed} rows (seq {pruned.first_seq}..{pruned.last_seq}) older "
            f"than {audit_export.iso(args.before)}; anchor row {pruned.anchor_seq}, "
            "checkpoint written",
        )
    return EXIT_OK


async def _sign_after_prune(
    store: base.Store,
    directory: checkpoints.CheckpointDir,
    chain: str | None,
    store_url: str,
    now: datetime,
    pruned: base.PruneResult,
) -> None:
    """Record the prune (so the chain keeps its id without its row 1), then sign the head."""
    if chain is None:
        return
    first = await checkpoints.first_row(store)
    at = audit_export.iso(now)
    if pruned.removed and first is not None:
        record = checkpoints.PruneRecord(
            chain=chain, first_seq=first.seq, continues_from=first.prev_hash, at=at
        )
        await anyio.to_thread.run_sync(directory.write_pruned, record)
    head = await store.audit_head()
    if head is not None:
        cp = checkpoints.Checkpoint(
            seq=head[0], head=head[1], at=at, chain=chain, store=checkpoints.store_label(store_url)
        )
        await anyio.to_thread.run_sync(directory.write, cp)
