"""``edi-gateway audit verify``: the chain in the store against its own checkpoints.

The chain is streamed from the store (constant memory). Only the checkpoints bound to
this chain (``gateway.checkpoints``) are evidence against it; the checkpoint directory
may also hold other chains' (another database, CERT beside production): they are named
in a warning and never checked against this chain. Old, unbound checkpoints confirm the
rows they match and are listed, not trusted, when they match nothing (they may be
another chain's). ``verify --file`` checks an export offline.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from gateway import audit, audit_export, checkpoints, config, errors
from gateway.client import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from gateway.store import base


def _emit(args: argparse.Namespace, data: dict[str, Any], human: str) -> None:
    print(json.dumps(data, indent=2) if getattr(args, "json", False) else human)


def key_or_warn(cfg: config.Config, *, create: bool) -> bytes | None:
    """The HMAC key; a warning on stderr when one had to be generated."""
    key, source = checkpoints.load_key(cfg, create=create)
    if source == "generated":
        print(
            f"warning: generated an audit HMAC key in "
            f"{checkpoints.directory(cfg) / checkpoints.KEY_FILE}; "
            "set EDIGW_AUDIT__HMAC_KEY instead",
            file=sys.stderr,
        )
    return key


@dataclass
class Evidence:
    """What the checkpoint directory says about one chain."""

    chain: str | None
    #: this chain's authentic checkpoints, oldest first
    signed: list[checkpoints.Checkpoint] = field(default_factory=list)
    #: this chain's files that do not authenticate: an alarm
    bad: list[str] = field(default_factory=list)
    #: old, unbound checkpoints, and the unbound files that do not authenticate
    unbound: list[checkpoints.Checkpoint] = field(default_factory=list)
    unbound_bad: list[str] = field(default_factory=list)
    #: other chains' ids and their newest checkpoints: not evidence here
    others: dict[str, checkpoints.Checkpoint | None] = field(default_factory=dict)


async def gather(
    store: base.Store, directory: checkpoints.CheckpointDir | None
) -> Evidence:
    """Bind the store's chain and sort the directory's checkpoints by whose they are."""
    if directory is None:  # no key: nothing in the directory can be authenticated
        first = await checkpoints.first_row(store)
        return Evidence(chain=first.hash if first and first.seq == 1 else None)
    chain = await checkpoints.chain_id(store, directory)

    def _read() -> Evidence:
        found = Evidence(chain=chain)
        if chain is not None:
            found.signed, found.bad = directory.load(chain)
        found.unbound, found.unbound_bad = directory.load(None)
        found.others = {c: cp for c, cp in directory.chains().items() if c != chain}
        return found

    return await anyio.to_thread.run_sync(_read)


@dataclass
class Unbound:
    """How the old, unbound checkpoints compare with this chain."""

    by_seq: dict[int, list[checkpoints.Checkpoint]]
    confirmed: int = 0
    unmatched: list[int] = field(default_factory=list)

    def see(self, row: audit.AuditRow) -> None:
        for cp in self.by_seq.pop(row.seq, ()):
            if cp.head == row.hash:
                self.confirmed += 1
            else:
                self.unmatched.append(cp.seq)

    def finish(self) -> None:  # beyond this chain's head
        self.unmatched.extend(seq for seq, cps in self.by_seq.items() for _ in cps)
        self.by_seq = {}


async def walk(
    store: base.Store,
    signed: list[checkpoints.Checkpoint],
    unbound: Sequence[checkpoints.Checkpoint] = (),
) -> tuple[audit.VerifyResult, Unbound]:
    """Stream the chain through the verifier, against ``signed`` only."""
    verifier = audit.ChainVerifier(checkpoints={c.seq: c.head for c in signed})
    by_seq: dict[int, list[checkpoints.Checkpoint]] = defaultdict(list)
    for cp in unbound:
        by_seq[cp.seq].append(cp)
    old = Unbound(dict(by_seq))
    async for row in store.audit_rows():
        if not verifier.feed(row):
            break
        if old.by_seq:
            old.see(row)
    result = verifier.finish()
    if result.ok:
        old.finish()
    return result, old


def _notes(ev: Evidence, old: Unbound, store_url: str, directory: Path) -> list[str]:
    """The plain words about checkpoints that are not this chain's."""
    notes: list[str] = []
    label = checkpoints.store_label(store_url)
    if ev.others:
        described = "; ".join(
            f"chain {c[:16]}…"
            + (f" (store {cp.store}, row {cp.seq} signed at {cp.at})" if cp else "")
            for c, cp in ev.others.items()
        )
        notes.append(
            f"{directory} also holds the checkpoints of {len(ev.others)} other chain(s), "
            f"not checked against this one: {described}"
        )
        same = [c for c, cp in ev.others.items() if cp is not None and cp.store == label]
        if same:
            notes.append(
                f"chain {same[0][:16]}… was signed for this same store ({label}): if this "
                "database was not replaced or started afresh, this chain was rewritten from "
                "its first row"
            )
    if old.unmatched:
        seqs = ", ".join(str(s) for s in sorted(old.unmatched)[:10])
        notes.append(
            f"{len(old.unmatched)} unbound checkpoint(s) (written before checkpoints named "
            f"their chain, at the top of {directory}) match no row of this chain (rows "
            f"{seqs}): another chain's, or this chain was cut or rewritten before the "
            "upgrade; verify cannot tell which. Checkpoints written since are bound."
        )
    if ev.unbound_bad:
        notes.append(
            f"{len(ev.unbound_bad)} unbound checkpoint file(s) do not authenticate (another "
            f"key, or altered): {ev.unbound_bad[0]}"
        )
    return notes


def cmd_verify(args: argparse.Namespace) -> int:
    if args.file is not None:
        return _verify_file(args)
    cfg = config.load_config(args.config)
    key = key_or_warn(cfg, create=False)
    path = checkpoints.directory(cfg)
    if key is None and any(path.rglob("checkpoint-*.json")):
        print(
            f"cannot verify: checkpoints exist in {path} but there is no HMAC key "
            "(set EDIGW_AUDIT__HMAC_KEY)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    directory = None if key is None else checkpoints.CheckpointDir(path, key=key)

    async def _run() -> tuple[Evidence, audit.VerifyResult | None, Unbound | None]:
        store = base.open_store(cfg.gateway.store)
        await store.open()
        try:
            ev = await gather(store, directory)
            if ev.bad:
                return ev, None, None
            result, old = await walk(store, ev.signed, ev.unbound)
            return ev, result, old
        finally:
            await store.close()

    started = time.perf_counter()
    ev, result, old = anyio.run(_run)
    elapsed = time.perf_counter() - started
    if result is None or old is None:
        _emit(
            args,
            {"ok": False, "reason": "checkpoint does not authenticate", "files": ev.bad,
             "chain": ev.chain},
            f"audit checkpoint BROKEN: {ev.bad[0]}",
        )
        return EXIT_FAILED
    notes = _notes(ev, old, cfg.gateway.store, path)
    data = {
        "ok": result.ok,
        "rows": result.rows,
        "head": result.head,
        "first_seq": result.first_seq,
        "last_seq": result.last_seq,
        "checkpoint_seq": result.checkpoint_seq,
        "first_bad_seq": result.first_bad_seq,
        "reason": result.reason,
        "chain": ev.chain,
        "other_chains": sorted(ev.others),
        "unbound_checkpoints": {"confirmed": old.confirmed, "unmatched": sorted(old.unmatched)},
        "warnings": [*result.warnings, *notes],
        "seconds": round(elapsed, 3),
    }
    for warning in data["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    if result.ok:
        against = (
            f"; matches its signed checkpoint at row {result.checkpoint_seq}"
            if result.checkpoint_seq
            else ""
        )
        chain = f" (chain {ev.chain[:16]}…)" if ev.chain else ""
        _emit(
            args,
            data,
            f"audit chain verifies{chain}: {result.rows} rows checked, head {result.head[:16]}…"
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
