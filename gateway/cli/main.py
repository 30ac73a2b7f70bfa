"""``edi-gateway``: the composition root. Reads env and config, builds objects, runs.

Exit codes: 0 ok · 1 the operation failed (e.g. audit does not verify) · 2 usage or
config error · 3 not found · 4 refused (invalid input, conflict, auth) · 5 the gateway
could not be reached or is unavailable.

A SIGTERM that arrives while the program is still starting (importing, reading config,
opening the store), before ``serve`` installs its own graceful handler, is a clean stop:
exit 0 with nothing accepted yet, not death by signal (a supervisor that stops a process
it has just restarted must not see a failure).
"""

# ruff: noqa: E402  (the early SIGTERM handler must come before the slow imports)
from __future__ import annotations

import signal as _signal


def _stop_before_start(signum: int, frame: object) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    _signal.signal(_signal.SIGTERM, _stop_before_start)

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from gateway import config, errors, logs, registry
from gateway.audit import redact
from gateway.cli.client import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        "-c",
        default=os.environ.get("EDIGW_CONFIG", str(config.DEFAULT_CONFIG_PATH)),
        help="TOML config file (default: $EDIGW_CONFIG or config/gateway.toml)",
    )


def _add_client(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--url",
        default=os.environ.get("EDIGW_URL"),
        help="gateway base URL (default: $EDIGW_URL or the config's listen address)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("EDIGW_TOKEN"),
        help="bearer token (default: $EDIGW_TOKEN)",
    )
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    _add_config(p)


def _add_json(p: argparse.ArgumentParser, text: str = "print JSON for scripts") -> None:
    p.add_argument("--json", action="store_true", help=text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edi-gateway", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the gateway (API + dispatcher)")
    _add_config(p)

    p = sub.add_parser("check-config", help="validate the config file; exit 2 naming the bad key")
    _add_config(p)
    _add_json(p)

    p = sub.add_parser("migrate", help="apply the store's schema migrations")
    _add_config(p)
    _add_json(p)

    p = sub.add_parser(
        "adapters",
        help="list configured adapters (from a running gateway with --url, else from the config)",
    )
    _add_client(p)

    p = sub.add_parser("submit", help="submit a filing event from FILE (or - for stdin)")
    p.add_argument("file")
    p.add_argument("--idempotency-key")
    _add_client(p)

    p = sub.add_parser("status", help="show one filing and its deliveries")
    p.add_argument("id")
    _add_client(p)

    p = sub.add_parser("list", help="list filings, newest first")
    for name in (
        "status",
        "state",
        "filing-type",
        "environment",
        "reference",
        "adapter",
        "since",
        "until",
        "cursor",
    ):
        p.add_argument(f"--{name}")
    p.add_argument("--limit", type=int, default=50)
    _add_client(p)

    from gateway.cli import monitor as monitor_cli

    for name, text in (
        ("retry", "put dead or blocked deliveries back to pending (one filing, or by filter)"),
        ("cancel", "cancel deliveries not yet delivered (one filing, or by filter)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("id", nargs="?", help="a filing id; omit and give filters for bulk")
        monitor_cli.add_bulk_arguments(p)
        _add_client(p)

    monitor_cli.add_parsers(sub, _add_client)

    from gateway.cli import outages as outages_cli

    outages_cli.add_parser(sub, _add_config, _add_client)

    from gateway.cli import acks as acks_cli
    from gateway.cli import callbacks as callbacks_cli
    from gateway.cli import x12 as x12_cli

    acks_cli.add_parser(sub, _add_client)
    callbacks_cli.add_parser(sub, _add_client)
    x12_cli.add_parser(sub, _add_client)
    p = sub.add_parser(
        "normalize", help="dry run: print the filing(s) an inbound event becomes; stores nothing"
    )
    p.add_argument("--source", required=True, help="the [sources.NAME] whose normalizer to use")
    p.add_argument("file", help="the event (plain JSON or a structured CloudEvent), - for stdin")
    _add_config(p)
    _add_json(p, "output is always JSON (the flag is accepted for symmetry)")

    p = sub.add_parser("audit", help="audit trail tools")
    audit_sub = p.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    from gateway.cli import audit as audit_cli

    audit_cli.add_parsers(audit_sub, _add_config)
    return parser


def _load(args: argparse.Namespace) -> config.Config:
    return config.load_config(args.config)


def _print(args: argparse.Namespace, data: Any, human: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, default=str))
    else:
        print(human)


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = _load(args)
    for name, section in cfg.adapters.items():
        registry.build(name, section)
    from gateway.inbound import normalizers

    normalizers.Sources(cfg)  # loads every normalizer: a bad one is a config error now
    counts = {"adapters": len(cfg.adapters), "routes": len(cfg.routes), "sources": len(cfg.sources)}
    _print(
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
    cfg = _load(args)
    logs.configure(
        cfg.gateway.log_format,
        cfg.gateway.log_level,
        redactor=redact.Redactor(cfg.audit.redact_paths),
        cache=True,
    )
    from gateway.server import Gateway

    gateway = Gateway(cfg)
    anyio.run(gateway.run, backend_options=_loop_options())
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    cfg = _load(args)
    from gateway.cli import render as cli_render
    from gateway.store import base
    from gateway.store import open as store_open

    async def _run() -> tuple[int, int]:
        store = store_open.open_store(cfg.gateway.store)
        await store.open()
        try:
            before = await store.schema_version()
            with cli_render.Spinner(f"migrating v{before} → v{base.SCHEMA_VERSION}"):
                return before, await store.migrate()
        finally:
            await store.close()

    before, version = anyio.run(_run)
    done = "already" if before == version else f"from v{before}"
    _print(args, {"from": before, "to": version}, f"schema at v{version} ({done})")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the program itself (the console script): see the module docstring
        _signal.signal(_signal.SIGTERM, _stop_before_start)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command not in ("serve",):
        logs.configure("console" if sys.stderr.isatty() else "json", "warning")
    from gateway.cli import client
    from gateway.cli import monitor as monitor_cli
    from gateway.inbound import dryrun

    commands: dict[str, client.Command] = {
        "serve": cmd_serve,
        "check-config": cmd_check_config,
        "migrate": cmd_migrate,
        "adapters": client.cmd_adapters,
        "submit": client.cmd_submit,
        "status": client.cmd_status,
        "list": client.cmd_list,
        "retry": _action,
        "cancel": _action,
        "top": monitor_cli.cmd_top,
        "normalize": dryrun.cmd_normalize,
    }
    try:
        if args.command == "outages":
            from gateway.cli import outages as outages_cli

            return outages_cli.run(args)
        if args.command == "audit":
            from gateway.cli import audit as audit_cli

            return audit_cli.run(args)
        if args.command in ("acks", "callbacks", "x12"):
            from gateway.cli import acks as acks_cli
            from gateway.cli import callbacks as callbacks_cli
            from gateway.cli import x12 as x12_cli

            run = {"acks": acks_cli.run, "callbacks": callbacks_cli.run, "x12": x12_cli.run}
            return run[args.command](args)
        return commands[args.command](args)
    except errors.ConfigError as exc:
        return _fail(args, "config", exc, EXIT_USAGE)
    except errors.StoreError as exc:
        return _fail(args, "store", exc, EXIT_UNAVAILABLE)
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:  # the CLI's top: never a traceback for an expected failure
        if isinstance(exc, SystemExit):
            raise
        if isinstance(exc, BaseExceptionGroup):
            inner = exc.exceptions[0]
            if isinstance(inner, errors.ConfigError):
                return _fail(args, "config", inner, EXIT_USAGE)
            if isinstance(inner, errors.StoreError):
                return _fail(args, "store", inner, EXIT_UNAVAILABLE)
        raise


def _fail(args: argparse.Namespace, kind: str, exc: Exception, code: int) -> int:
    """Say why the command stopped: for ``serve`` one JSON line on stderr, like every other
    line of its log (a log shipper reads it); for the other commands, plain words."""
    if args.command == "serve":
        line: dict[str, Any] = {"event": f"gateway.{kind}_error", "level": "error"}
        line["error"] = str(exc)
        if getattr(exc, "key", None):
            line["key"] = exc.key  # type: ignore[attr-defined]
        print(json.dumps(line), file=sys.stderr)
    else:
        print(f"{kind} error: {exc}", file=sys.stderr)
    return code


def _action(args: argparse.Namespace) -> int:
    """``retry ID`` / ``cancel ID`` act on one filing; with filters instead, in bulk."""
    from gateway.cli import client
    from gateway.cli import monitor as monitor_cli

    if args.id is not None and monitor_cli.has_filter(args):
        print("give a filing id or filters, not both", file=sys.stderr)
        return EXIT_USAGE
    if args.id is not None:
        return int(client.cmd_action(args))
    if not monitor_cli.has_filter(args):
        print(f"{args.command}: give a filing id, or filters such as --state dead", file=sys.stderr)
        return EXIT_USAGE
    return int(monitor_cli.cmd_bulk(args))


def _path(value: str) -> Path:
    return Path(value)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
