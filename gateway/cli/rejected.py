"""``edi-gateway rejected list`` / ``rejected replay ID --reason`` (issue 21): the inbound
events that could not become filings, and their replay after a fix (scope ``operate``,
audited with the token's name and the reason). ``--json`` prints the API's answer."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateway.cli import client
from gateway.cli import render as cli_render

EXIT_OK, EXIT_STILL_REJECTED = 0, 1


def add_parser(sub: Any, add_client: Any) -> None:
    p = sub.add_parser("rejected", help="rejected inbound events: list, replay after a fix")
    actions = p.add_subparsers(dest="rejected_command", required=True, metavar="ACTION")
    pl = actions.add_parser("list", help="rejected inbound events, newest first")
    pl.add_argument("--source", help="only this [sources.NAME]")
    pl.add_argument("--limit", type=int, default=50, help="at most this many (1-500)")
    add_client(pl)
    pr = actions.add_parser(
        "replay", help="run a rejected event through today's config (exit 1: still rejected)"
    )
    pr.add_argument("id", help="the rejected event id (rej_…)")
    pr.add_argument("--reason", required=True, help="why (goes into the audit trail)")
    add_client(pr)


def run(args: argparse.Namespace) -> int:
    if args.rejected_command == "replay":
        return int(client.run_api(_replay)(args))
    return int(client.run_api(_list)(args))


def _list(args: argparse.Namespace) -> int:
    params = {"limit": str(args.limit)}
    if args.source:
        params["source"] = args.source
    data = client.call(args, "GET", "/v1/rejected-events", params=params)
    if args.json:
        cli_render.emit_json(data)
        return EXIT_OK
    if not data["items"]:
        print("no rejected events")
        return EXIT_OK
    headers = ["id", "source", "origin", "received", "reason"]
    rows = [
        [i["id"], i["source"], i["origin"], i["received_at"], i["reason"]] for i in data["items"]
    ]
    cli_render.out(cli_render.table(headers, rows, keep=(0,)))
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    body = json.dumps({"reason": args.reason}).encode()
    data = client.call(args, "POST", f"/v1/rejected-events/{args.id}/replay", body=body)
    if args.json:
        cli_render.emit_json(data)
    elif data["outcome"] == "rejected":
        print(f"{args.id} still rejected: {data['error']['message']}")
    else:
        print(f"{args.id} {data['outcome']}: {', '.join(data['filing_ids'])}")
    return EXIT_STILL_REJECTED if data["outcome"] == "rejected" else EXIT_OK
