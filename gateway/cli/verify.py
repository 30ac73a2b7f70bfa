"""``edi-gateway audit verify``: the command over ``gateway.audit.verify``'s evidence
and walk; opens the store, prints a human summary or ``--json``, sets the exit code."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio

from gateway import config, errors
from gateway.audit import chain as audit
from gateway.audit import checkpoints, export_check
from gateway.audit import verify as audit_verify
from gateway.audit.verify import Evidence, Unbound, gather, key_or_warn, walk
from gateway.cli.client import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from gateway.clock import SystemClock
from gateway.service import records_chain
from gateway.service.records import Records
from gateway.store import base
from gateway.store import open as store_open


@contextlib.asynccontextmanager
async def chain_of(
    store: base.Store, cfg: config.Config, environ: Mapping[str, str]
) -> AsyncIterator[records_chain.Chain]:
    """The whole chain of an open ``store``: its live rows and the rows archived in the
    segments of the archive ``cfg`` names (audit verify, export and prune read this)."""
    records = Records(store=store, cfg=cfg, clock=SystemClock(), environ=environ)
    try:
        yield await records_chain.Chain(store, records).load()
    finally:
        records.close()


def _emit(args: argparse.Namespace, data: dict[str, Any], human: str) -> None:
    print(json.dumps(data, indent=2) if getattr(args, "json", False) else human)


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
        store = store_open.open_store(cfg.gateway.store)
        await store.open()
        try:
            async with chain_of(store, cfg, os.environ) as chain:
                try:  # live rows and the archive's, one chain
                    ev = await gather(chain, directory)
                except audit.RowsUnreadable:  # the walk names it
                    ev = await gather(store, directory)
                if ev.bad:
                    return ev, None, None
                result, old = await walk(chain, ev.signed, ev.unbound, purged=chain.purged)
                return ev, result, old
        finally:
            await store.close()

    started = time.perf_counter()
    ev, result, old = anyio.run(_run)
    elapsed = time.perf_counter() - started
    if result is None or old is None:
        _emit(
            args,
            {
                "ok": False,
                "reason": "checkpoint does not authenticate",
                "files": ev.bad,
                "chain": ev.chain,
            },
            f"audit checkpoint BROKEN: {ev.bad[0]}",
        )
        return EXIT_FAILED
    notes = audit_verify.notes(ev, old, cfg.gateway.store, path)
    data: dict[str, Any] = {
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
            result = export_check.verify_export(fh, key=key)
    except OSError as exc:
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UnicodeDecodeError as exc:
        result = export_check.ExportResult(False, 0, False, f"not UTF-8 text: {exc}")
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
