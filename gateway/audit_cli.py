"""``edi-gateway audit verify | export | prune``: the audit trail's operator tools.

``verify`` streams the chain from the store (constant memory) and checks it against
every authentic checkpoint; ``verify --file`` checks an export offline. ``export``
writes JSON Lines (see ``gateway.audit_export``). ``prune`` removes rows older than a
date, never younger than ``[audit] retention``, and leaves an ``audit.pruned`` anchor
plus a fresh signed checkpoint so the rest still verifies.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import anyio

from gateway import audit, audit_export, checkpoints, config, errors
from gateway.client import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE
from gateway.store import base


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


def _signed_checkpoints(
    cfg: config.Config, *, create: bool
) -> tuple[bytes | None, list[checkpoints.Checkpoint], list[str]]:
    key, source = checkpoints.load_key(cfg, create=create)
    directory = checkpoints.directory(cfg)
    if source == "generated":
        print(
            f"warning: generated an audit HMAC key in {directory / checkpoints.KEY_FILE}; "
            "set EDIGW_AUDIT__HMAC_KEY instead",
            file=sys.stderr,
        )
    if key is None:
        return None, [], []
    found, bad = checkpoints.CheckpointDir(directory, key=key).load()
    return key, found, bad


async def _walk(store: base.Store, signed: list[checkpoints.Checkpoint]) -> audit.VerifyResult:
    verifier = audit.ChainVerifier(checkpoints={c.seq: c.head for c in signed})
    async for row in store.audit_rows():
        if not verifier.feed(row):
            break
    return verifier.finish()


# --- verify -------------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    if args.file is not None:
        return _verify_file(args)
    cfg = config.load_config(args.config)
    key, signed, bad = _signed_checkpoints(cfg, create=False)
    directory = checkpoints.directory(cfg)
    if key is None and any(directory.glob("checkpoint-*.json")):
        print(
            f"cannot verify: checkpoints exist in {directory} but there is no HMAC key "
            "(set EDIGW_AUDIT__HMAC_KEY)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if bad:
        _emit(
            args,
            {"ok": False, "reason": "checkpoint does not authenticate", "files": bad},
            f"audit checkpoint BROKEN: {bad[0]}",
        )
        return EXIT_FAILED

    async def _run() -> audit.VerifyResult:
        store = base.open_store(cfg.gateway.store)
        await store.open()
        try:
            return await _walk(store, signed)
        finally:
            await store.close()

    started = time.perf_counter()
    result = anyio.run(_run)
    elapsed = time.perf_counter() - started
    data = {
        "ok": result.ok,
        "rows": result.rows,
        "head": result.head,
        "first_seq": result.first_seq,
        "last_seq": result.last_seq,
        "checkpoint_seq": result.checkpoint_seq,
        "first_bad_seq": result.first_bad_seq,
        "reason": result.reason,
        "warnings": list(result.warnings),
        "seconds": round(elapsed, 3),
    }
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if result.ok:
        against = (
            f"; matches the signed checkpoint at row {result.checkpoint_seq}"
            if result.checkpoint_seq
            else ""
        )
        _emit(
            args,
            data,
            f"audit chain verifies: {result.rows} rows checked, head {result.head[:16]}…"
            f"{against} ({elapsed:.2f}s)",
        )
        return EXIT_OK
    _emit(
        args,
        data,
        f"audit chain BROKEN at row {result.first_bad_seq}: {result.reason} "
        f"({result.rows} rows verified before it)",
    )
    return EXIT_FAILED


def _verify_file(args: argparse.Namespace) -> int:
    key = _optional_key(args.config)
    try:
        with open(args.file, encoding="utf-8") as fh:
            result = audit_export.verify_export(fh, key=key)
    except OSError as exc:
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UnicodeDecodeError as exc:
        result = audit_export.ExportResult(False, 0, False, f"not UTF-8 text: {exc}")
    data = {
        "ok": result.ok,
        "rows": result.rows,
        "complete": result.complete,
        "sealed": result.sealed,
        "checkpoint_seq": result.checkpoint_seq,
        "first_bad_seq": result.first_bad_seq,
        "line": result.line,
        "reason": result.reason,
        "warnings": list(result.warnings),
    }
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not result.ok:
        where = f"row {result.first_bad_seq}, " if result.first_bad_seq else ""
        _emit(args, data, f"export BROKEN ({where}line {result.line}): {result.reason}")
        return EXIT_FAILED
    scope = (
        "complete chain"
        if result.complete
        else "filtered: each row matches its hash and consecutive rows link; rows outside "
        "the filter are not covered"
    )
    seal = "sealed with the audit key" if result.sealed else "seal NOT checked"
    _emit(args, data, f"export verifies: {result.rows} rows checked ({scope}; {seal})")
    return EXIT_OK


def _optional_key(config_path: str) -> bytes | None:
    """The HMAC key for offline checks: from the config/env when there is one."""
    try:
        cfg = config.load_config(config_path)
    except errors.ConfigError:
        try:
            cfg = config.parse_config({}, os.environ)
        except errors.ConfigError:
            return None
    key, _ = checkpoints.load_key(cfg, create=False)
    return key


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
    key, signed, bad = _signed_checkpoints(cfg, create=False)
    if bad:
        print(f"warning: skipping a checkpoint that does not authenticate: {bad[0]}",
              file=sys.stderr)
    if key is None:
        print("warning: no audit HMAC key: the export is not sealed", file=sys.stderr)
    newest = signed[-1].signed(key) if signed and key is not None else None
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
        store = base.open_store(cfg.gateway.store)
        await store.open()
        try:
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
    key, signed, bad = _signed_checkpoints(cfg, create=True)
    assert key is not None
    if bad:
        print(f"refused: a checkpoint does not authenticate: {bad[0]}", file=sys.stderr)
        return EXIT_FAILED

    async def _run() -> tuple[audit.VerifyResult, base.PruneResult | None]:
        store = base.open_store(cfg.gateway.store)
        await store.open()
        try:
            version = await store.schema_version()
            if version != base.SCHEMA_VERSION:
                raise errors.StoreError(
                    f"the database schema is v{version}; run `edi-gateway migrate` first"
                )
            checked = await _walk(store, signed)
            if not checked.ok:
                return checked, None
            actor = base.Actor(name=f"cli:{getpass.getuser()}")
            pruned = await store.prune_audit(before=args.before, actor=actor, now=now)
            head = await store.audit_head()
            if head is not None:
                cp = checkpoints.Checkpoint(seq=head[0], head=head[1], at=audit_export.iso(now))
                checkpoints.CheckpointDir(checkpoints.directory(cfg), key=key).write(cp)
            return checked, pruned
        finally:
            await store.close()

    checked, pruned = anyio.run(_run)
    if pruned is None:
        print(
            f"refused: the trail does not verify (row {checked.first_bad_seq}: "
            f"{checked.reason}); pruning would destroy the evidence",
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
