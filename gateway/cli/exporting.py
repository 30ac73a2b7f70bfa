"""``edi-gateway audit export``: the rows that match (time, filing, reference, adapter)
written as JSON Lines with the signed checkpoint in the header and a sealing trailer
(the layout: ``gateway.audit.export``), with a progress bar on a terminal."""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any, TextIO

import anyio

from gateway import config, values
from gateway.audit import chain as audit_chain
from gateway.audit import checkpoints
from gateway.audit import export as audit_export
from gateway.audit import verify as audit_verify
from gateway.cli import verify as cli_verify
from gateway.cli.client import EXIT_FAILED, EXIT_OK
from gateway.store import base
from gateway.store import open as store_open


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
            async with cli_verify.chain_of(store, cfg, os.environ) as chain:  # + archived rows
                async for row in chain.audit_rows():
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
        try:
            written = anyio.run(_run, out)
        except audit_chain.RowsUnreadable as exc:  # an archive segment missing or altered
            print(f"export stopped at row {exc.seq}: {exc.reason}", file=sys.stderr)
            return EXIT_FAILED
    if args.output != "-":
        print(f"exported {written} rows to {args.output}", file=sys.stderr)
    return EXIT_OK


async def _filings_of(store: base.Store, reference: str) -> set[str]:
    found: set[str] = set()
    cursor = None
    while True:
        page = await store.list_filings(
            values.ListFilter(reference=reference), limit=500, cursor=cursor
        )
        found |= {item.id for item in page.items}
        if not page.next_cursor:
            return found
        cursor = page.next_cursor
