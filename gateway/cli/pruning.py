"""``edi-gateway audit prune --before DATE``: remove rows older than DATE, never inside
``[audit] retention``, after the chain verifies; leave an ``audit.pruned`` anchor, a
signed prune record and a fresh checkpoint so what remains still verifies."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from gateway import config, values
from gateway.audit import chain as audit
from gateway.audit import checkpoints
from gateway.audit import export as audit_export
from gateway.audit import verify as audit_verify
from gateway.cli import verify as cli_verify
from gateway.cli.client import EXIT_FAILED, EXIT_OK, EXIT_REFUSED
from gateway.cli.local import require_migrated
from gateway.store import base
from gateway.store import open as store_open


def emit(args: argparse.Namespace, data: dict[str, Any], human: str) -> None:
    print(json.dumps(data, indent=2) if getattr(args, "json", False) else human)


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

    async def _run() -> tuple[audit.VerifyResult, values.PruneResult | None]:
        store = store_open.open_store(cfg.gateway.store)
        await store.open()
        try:
            await require_migrated(store)
            async with cli_verify.chain_of(store, cfg, os.environ) as chain:
                try:
                    ev = await audit_verify.gather(chain, directory)
                except audit.RowsUnreadable:  # the walk names it
                    ev = await audit_verify.gather(store, directory)
                if ev.bad:
                    reason = f"a checkpoint does not authenticate: {ev.bad[0]}"
                    return audit.VerifyResult(False, 0, "", 0, reason), None
                checked, _ = await audit_verify.walk(chain, ev.signed, purged=chain.purged)
            if not checked.ok:
                return checked, None
            actor = values.Actor(name=f"cli:{getpass.getuser()}")
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
        emit(args, data, f"nothing older than {audit_export.iso(args.before)} to prune")
    else:
        emit(
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
    pruned: values.PruneResult,
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
