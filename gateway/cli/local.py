"""The commands that run in this process rather than against a running gateway: ``serve``
(on uvloop where installed), ``check-config`` and ``migrate``."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import anyio

from gateway import config, errors, logs, registry
from gateway.audit import redact
from gateway.cli.client import EXIT_OK


def load(args: argparse.Namespace) -> config.Config:
    return config.load_config(args.config)


def say(args: argparse.Namespace, data: Any, human: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, default=str))
    else:
        print(human)


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = load(args)
    for name, section in cfg.adapters.items():
        registry.build(name, section)
    from gateway.inbound import normalizers

    normalizers.Sources(cfg)  # loads every normalizer: a bad one is a config error now
    counts = {"adapters": len(cfg.adapters), "routes": len(cfg.routes), "sources": len(cfg.sources)}
    say(
        args,
        {"config": args.config, "ok": True, **counts},
        f"{args.config}: ok ({counts['adapters']} adapters, {counts['routes']} routes, "
        f"{counts['sources']} sources)",
    )
    return EXIT_OK


def _loop_options() -> dict[str, bool]:
    """uvloop where it is installed (Linux and macOS): its event loop and transports are
    C, and the server spends a sixth of its time in the loop and aiohttp's transport
    (py-spy). ``EDIGW_EVENT_LOOP=asyncio`` keeps the standard loop."""
    if os.environ.get("EDIGW_EVENT_LOOP", "").lower() == "asyncio":
        return {}
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = load(args)
    logs.configure(
        cfg.gateway.log_format,
        cfg.gateway.log_level,
        redactor=redact.Redactor(cfg.audit.redact_paths),
        cache=True,
    )
    from gateway.server import Gateway

    gateway = Gateway(cfg, reload_from=lambda: config.load_config(args.config))
    anyio.run(gateway.run, backend_options=_loop_options())
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    cfg = load(args)
    from gateway.cli import progress as cli_progress
    from gateway.store import open as store_open
    from gateway.store import schema

    async def _run() -> tuple[int, int]:
        store = store_open.open_store(cfg.gateway.store)
        await store.open()
        try:
            before = await store.schema_version()
            with cli_progress.Spinner(f"migrating v{before} → v{schema.SCHEMA_VERSION}"):
                return before, await store.migrate()
        finally:
            await store.close()

    before, version = anyio.run(_run)
    done = "already" if before == version else f"from v{before}"
    say(args, {"from": before, "to": version}, f"schema at v{version} ({done})")
    return EXIT_OK


async def require_migrated(store: Any) -> None:
    """Refuse a local command on a database whose schema is not this gateway's version."""
    from gateway.store import schema

    version = await store.schema_version()
    if version != schema.SCHEMA_VERSION:
        raise errors.StoreError(
            f"the database schema is v{version}; run `edi-gateway migrate` first"
        )
