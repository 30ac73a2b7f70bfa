"""The command line of ``edi-gateway``: every command, its arguments and its help. The
command modules add their own subcommands through the hooks passed to them."""

from __future__ import annotations

import argparse
import os

from gateway import config

DESCRIPTION = "``edi-gateway``: the composition root. Reads env and config, builds objects, runs."


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
    parser = argparse.ArgumentParser(prog="edi-gateway", description=DESCRIPTION)
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
    from gateway.cli import pauses as pauses_cli

    pauses_cli.add_parsers(sub, _add_client)

    from gateway.cli import acks as acks_cli
    from gateway.cli import callbacks as callbacks_cli
    from gateway.cli import x12 as x12_cli

    acks_cli.add_parser(sub, _add_client)
    callbacks_cli.add_parser(sub, _add_client)
    x12_cli.add_parser(sub, _add_client)
    from gateway.cli import reload as reload_cli

    reload_cli.add_parser(sub, _add_client)
    from gateway.cli import rejected as rejected_cli

    rejected_cli.add_parser(sub, _add_client)
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
    from gateway.cli import records as records_cli

    records_cli.add_parser(sub, _add_config)
    return parser
