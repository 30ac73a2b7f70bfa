"""``edi-gateway acks list|show|post``: acknowledgements, through a running gateway's API.

``list`` is ``GET /v1/acks`` (``--unmatched`` for those that matched no filing); ``show
FILING`` is a filing's deliveries with their ack state and its acks; ``post FILE`` hands
in a TA1/997/999 (sent as ``application/edi-x12``) or JSON acks, as a VAN client would.
"""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli import client
from gateway.cli import render as cli_render

X12_TYPE, JSON_TYPE = "application/edi-x12", "application/json"


def add_parser(sub: Any, add_client: Any) -> None:
    p = sub.add_parser("acks", help="acknowledgements: list, show a filing's, post a 997/999/TA1")
    actions = p.add_subparsers(dest="acks_command", required=True, metavar="ACTION")
    pl = actions.add_parser("list", help="acks, newest first")
    which = pl.add_mutually_exclusive_group()
    which.add_argument("--unmatched", action="store_true", help="only acks that matched nothing")
    which.add_argument("--matched", action="store_true", help="only acks that matched a filing")
    pl.add_argument("--filing-id")
    pl.add_argument("--limit", type=int, default=50, help="1-500 (default 50)")
    add_client(pl)
    ps = actions.add_parser("show", help="one filing's deliveries, their ack state, and its acks")
    ps.add_argument("filing_id")
    add_client(ps)
    pp = actions.add_parser("post", help="hand in acks from FILE (- for stdin): X12 or JSON")
    pp.add_argument("file")
    pp.add_argument(
        "--content-type",
        choices=["x12", "json"],
        help="default: x12 when the file starts with ISA, else json",
    )
    add_client(pp)


def run(args: argparse.Namespace) -> int:
    handler = {"list": _list, "show": _show, "post": _post}[args.acks_command]
    return int(client.run_api(handler)(args))


def ack_rows(items: list[dict[str, Any]], *, with_filing: bool = True) -> list[list[Any]]:
    rows = []
    for r in items:
        ack = r["ack"]
        controls = "/".join(
            str(ack[k]) for k in ("interchange_control", "group_control") if ack.get(k) is not None
        )
        row = [
            r["id"],
            ack.get("received_at", "")[:19] if ack.get("received_at") else "",
            ack.get("kind", ""),
            ack.get("outcome") or ("status" if ack.get("unsolicited") else ""),
            " ".join(ack.get("codes") or []),
            controls,
            r["effect"],
        ]
        if with_filing:
            row.insert(1, r.get("filing_id") or "unmatched")
        rows.append(row)
    return rows


_ACK_HEADERS = ["ACK", "RECEIVED", "KIND", "OUTCOME", "CODES", "ICN/GCN", "EFFECT"]


def _list(args: argparse.Namespace) -> int:
    params = {"limit": str(args.limit)}
    if args.unmatched or args.matched:
        params["matched"] = "true" if args.matched else "false"
    if args.filing_id:
        params["filing_id"] = args.filing_id
    data = client.call(args, "GET", "/v1/acks", params=params)
    if args.json:
        cli_render.emit_json(data)
        return client.EXIT_OK
    if not data["items"]:
        print("no acks match")
        return client.EXIT_OK
    headers = [_ACK_HEADERS[0], "FILING", *_ACK_HEADERS[1:]]
    cli_render.out(cli_render.table(headers, ack_rows(data["items"]), keep=(0, 1)))
    return client.EXIT_OK


def _show(args: argparse.Namespace) -> int:
    filing = client.call(args, "GET", f"/v1/filings/{args.filing_id}")
    acks = client.call(args, "GET", f"/v1/filings/{args.filing_id}/acks")
    if args.json:
        cli_render.emit_json({"filing": filing, "acks": acks["items"]})
        return client.EXIT_OK
    print(f"{filing['id']}  {filing['status']}  {filing['filing_type']}  {filing['reference']}")
    rows = []
    for d in filing.get("deliveries", []):
        ack = d.get("ack") or {}
        flags = " ".join(
            f
            for f, on in (("OVERDUE", d.get("ack_overdue")), ("CONFLICT", d.get("ack_conflict")))
            if on
        )
        rows.append(
            [
                d["id"],
                d["adapter"],
                d["state"],
                (d.get("ack_due_at") or "")[:19],
                ack.get("outcome", ""),
                " ".join(ack.get("codes") or []),
                flags,
            ]
        )
    headers = ["DELIVERY", "ADAPTER", "STATE", "ACK DUE", "LAST ACK", "CODES", "FLAGS"]
    cli_render.out(cli_render.table(headers, rows))
    print()
    if acks["items"]:
        cli_render.out(cli_render.table(_ACK_HEADERS, ack_rows(acks["items"], with_filing=False)))
    else:
        print("no acks yet")
    return client.EXIT_OK


def _post(args: argparse.Namespace) -> int:
    raw = client.read_file_arg(args.file)
    if raw is None:
        return client.EXIT_USAGE
    kind = args.content_type or (
        "x12" if raw.lstrip(b"\xef\xbb\xbf \r\n\t").startswith(b"ISA") else "json"
    )
    headers = {"Content-Type": X12_TYPE if kind == "x12" else JSON_TYPE}
    data = client.call(args, "POST", "/v1/acks", body=raw, headers=headers)
    if args.json:
        cli_render.emit_json(data)
        return client.EXIT_OK
    print(
        f"{len(data['acks'])} acks stored: {data['matched']} matched, "
        f"{data['unmatched']} unmatched, {data['duplicates']} duplicates"
    )
    if data["acks"]:
        headers_ = [_ACK_HEADERS[0], "FILING", *_ACK_HEADERS[1:]]
        cli_render.out(cli_render.table(headers_, ack_rows(data["acks"]), keep=(0, 1)))
    return client.EXIT_OK
