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
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gateway import errors, logs
from gateway.cli.client import EXIT_UNAVAILABLE, EXIT_USAGE
from gateway.cli.local import cmd_check_config, cmd_migrate, cmd_serve
from gateway.cli.parser import build_parser

__all__ = ["build_parser", "main"]


def _group(command: str) -> Callable[[argparse.Namespace], int] | None:
    """The ``run`` of a command group, imported only when it is used."""
    if command == "outages":
        from gateway.cli import outages

        return outages.run
    if command in ("pause", "resume", "pauses"):
        from gateway.cli import pauses

        return pauses.run
    if command == "audit":
        from gateway.cli import audit

        return audit.run
    if command == "records":
        from gateway.cli import records

        return records.run
    if command == "rejected":
        from gateway.cli import rejected

        return rejected.run
    if command == "reload":
        from gateway.cli import reload

        return reload.run
    if command in ("acks", "callbacks", "x12"):
        from gateway.cli import acks, callbacks, x12

        return {"acks": acks.run, "callbacks": callbacks.run, "x12": x12.run}[command]
    return None


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
        run = _group(args.command)
        if run is not None:
            return run(args)
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
