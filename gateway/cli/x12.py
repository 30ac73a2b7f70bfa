"""``edi-gateway x12 gaps``: control numbers allocated but never sent, or never answered.

Per sender/receiver/usage: how many numbers were allocated and what became of them,
then the gaps themselves (oldest first). ``--older-than 15m`` leaves recent sends time
to be acknowledged; ``--check`` exits 1 when there is any gap (for cron and monitors).
"""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli import client
from gateway.cli import render as cli_render


def add_parser(sub: Any, add_client: Any) -> None:
    p = sub.add_parser("x12", help="X12 control numbers: gaps")
    actions = p.add_subparsers(dest="x12_command", required=True, metavar="ACTION")
    pg = actions.add_parser(
        "gaps", help="numbers allocated but never sent, or sent and never acknowledged"
    )
    pg.add_argument("--sender", help="ISA05:ISA06, e.g. ZZ:MAEU")
    pg.add_argument("--receiver", help="ISA07:ISA08, e.g. ZZ:CBPACE")
    pg.add_argument("--usage", choices=["T", "P"], help="ISA15: T (test) or P (production)")
    pg.add_argument("--since", metavar="TIME", help="allocated at or after (ISO 8601)")
    pg.add_argument("--until", metavar="TIME", help="allocated before (ISO 8601)")
    pg.add_argument("--older-than", metavar="DURATION", help="allocated longer ago, e.g. 15m")
    pg.add_argument("--kind", choices=["unsent", "unacknowledged"], help="only this kind")
    pg.add_argument("--limit", type=int, default=100, help="gaps listed (1-1000)")
    pg.add_argument("--check", action="store_true", help="exit 1 when there is any gap")
    add_client(pg)


def run(args: argparse.Namespace) -> int:
    return int(client.run_api(_gaps)(args))


def _gaps(args: argparse.Namespace) -> int:
    params = {"limit": str(args.limit)}
    for name in ("sender", "receiver", "usage", "since", "until", "older_than", "kind"):
        value = getattr(args, name)
        if value:
            params[name] = value
    data = client.call(args, "GET", "/v1/x12/gaps", params=params)
    found = sum(g["unsent"] + g["unacknowledged"] for g in data["groups"])
    if args.json:
        cli_render.emit_json(data)
    else:
        _print(data, found)
    return client.EXIT_FAILED if args.check and found else client.EXIT_OK


def _print(data: dict[str, Any], found: int) -> None:
    if not data["groups"]:
        print("no X12 control numbers allocated in this range")
        return
    rows = [
        [
            g["sender"],
            g["receiver"],
            g["usage"],
            g["allocated"],
            g["acknowledged"],
            g["unacknowledged"],
            g["unsent"],
            g["in_flight"],
            f"{g['first_interchange']}-{g['last_interchange']}",
        ]
        for g in data["groups"]
    ]
    headers = ["SENDER", "RECEIVER", "USAGE", "ALLOCATED", "ACKED", "UNACKED", "UNSENT", "INFL",
               "ICN RANGE"]  # fmt: skip
    cli_render.out(cli_render.table(headers, rows, right={3, 4, 5, 6, 7}, keep=(0, 1)))
    print()
    if not data["gaps"]:
        print("no gaps")
        return
    gap_rows = [
        [
            g["interchange_control"],
            g["group_control"],
            g["kind"],
            f"{g['sender']}>{g['receiver']}/{g['usage']}",
            g["delivery_id"],
            g["attempt"],
            g["allocated_at"][:19],
            g.get("delivery_state") or "",
            (g.get("attempt_error") or "")[:200],
        ]
        for g in data["gaps"]
    ]
    headers = ["ICN", "GCN", "GAP", "PAIR", "DELIVERY", "TRY", "ALLOCATED", "NOW", "ERROR"]
    cli_render.out(cli_render.table(headers, gap_rows, right={0, 1, 5}, keep=(0, 4)))
    if data["truncated"]:
        print(f"(more gaps than listed: {found} in all; raise --limit or narrow the range)")
