"""``edi-gateway pause`` / ``resume`` / ``pauses list`` (issue 21): pause an adapter, a
filing type or both on a running gateway (scope ``operate``), resume, list; ``--json``
prints the API's answer."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateway import models
from gateway.cli import client
from gateway.cli import render as cli_render

EXIT_OK, EXIT_USAGE = 0, 2


def add_parsers(sub: Any, add_client: Any) -> None:
    p = sub.add_parser("pause", help="pause an adapter, a filing type, or a type on one adapter")
    p.add_argument("--adapter", help="the adapter to pause (all its types unless --type)")
    p.add_argument(
        "--type",
        dest="filing_type",
        choices=[t.value for t in models.FilingType],
        help="the filing type to pause (on every adapter unless --adapter)",
    )
    p.add_argument("--reason", required=True, help="why (goes into the audit trail)")
    p.add_argument("--ends-at", help="resume on its own at this time (ISO 8601 with offset)")
    add_client(p)
    p = sub.add_parser("resume", help="end a pause now; what it held goes at the rate limit")
    p.add_argument("id", help="the pause id (pau_…)")
    add_client(p)
    p = sub.add_parser("pauses", help="pauses in force (`pauses` alone lists them too)")
    p.add_argument("--all", action="store_true", help="resumed ones too")
    add_client(p)
    actions = p.add_subparsers(dest="pauses_command", metavar="ACTION")
    pl = actions.add_parser("list", help="pauses in force")
    pl.add_argument("--all", action="store_true", help="resumed ones too")
    add_client(pl)


def run(args: argparse.Namespace) -> int:
    if args.command == "pause":
        return int(client.run_api(_pause)(args))
    if args.command == "resume":
        return int(client.run_api(_resume)(args))
    return int(client.run_api(_list)(args))  # pauses [list]


def _pause(args: argparse.Namespace) -> int:
    if not args.adapter and not args.filing_type:
        print("give --adapter, --type, or both")
        return EXIT_USAGE
    body: dict[str, Any] = {"reason": args.reason}
    for key in ("adapter", "filing_type", "ends_at"):
        if getattr(args, key):
            body[key] = getattr(args, key)
    data = client.call(args, "POST", "/v1/pauses", body=json.dumps(body).encode())
    _out(args, data, "paused " + format_pause(data))
    return EXIT_OK


def _resume(args: argparse.Namespace) -> int:
    data = client.call(args, "DELETE", f"/v1/pauses/{args.id}")
    _out(args, data, "resumed " + format_pause(data))
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    params = {"all": "true"} if args.all else None
    data = client.call(args, "GET", "/v1/pauses", params=params)
    if args.json:
        cli_render.emit_json(data)
        return EXIT_OK
    if not data["pauses"]:
        print("no pauses in force")
        return EXIT_OK
    headers = ["id", "adapter", "type", "until", "by", "reason", "resumed"]
    rows = [
        [
            p["id"],
            p.get("adapter") or "*",
            p.get("filing_type") or "*",
            p.get("ends_at") or "until resumed",
            p["created_by"],
            p["reason"],
            p.get("resumed_at") or "",
        ]
        for p in data["pauses"]
    ]
    cli_render.out(cli_render.table(headers, rows, keep=(0,)))
    return EXIT_OK


def format_pause(p: dict[str, Any]) -> str:
    target = ", ".join(
        [f"adapter {p['adapter']}"] * bool(p.get("adapter"))
        + [f"type {p['filing_type']}"] * bool(p.get("filing_type"))
    )
    end = f" until {p['ends_at']}" if p.get("ends_at") else " until resumed"
    return f"{p['id']}  {target}{end}  {p['reason']}"


def _out(args: argparse.Namespace, data: Any, human: str) -> None:
    if args.json:
        cli_render.emit_json(data)
    else:
        print(human)
