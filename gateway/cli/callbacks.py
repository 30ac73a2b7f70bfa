"""``edi-gateway callbacks list|retry``: status callbacks, through a running gateway's API.

``list`` is ``GET /v1/callbacks`` (``--state dead`` is the dead-letter list). ``retry``
sends dead callbacks again: named ones (``retry evt_… evt_…``), a filing's (``--filing-id``)
or every dead one (``--all-dead``). Bulk retries preview the set, then go in chunks
pinned to the preview's time, with a progress bar; the ``--reason`` is audited.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gateway.cli import client
from gateway.cli import progress as cli_progress
from gateway.cli import render as cli_render

STATES = ["pending", "in_flight", "waiting_retry", "delivered", "dead"]


def add_parser(sub: Any, add_client: Any) -> None:
    p = sub.add_parser("callbacks", help="status callbacks: list, retry dead ones")
    actions = p.add_subparsers(dest="callbacks_command", required=True, metavar="ACTION")
    pl = actions.add_parser("list", help="callbacks, newest first (--state dead: dead letters)")
    pl.add_argument("--state", choices=STATES)
    pl.add_argument("--filing-id")
    pl.add_argument("--limit", type=int, default=50, help="1-500 (default 50)")
    add_client(pl)
    pr = actions.add_parser("retry", help="send dead callbacks again (audited, with a reason)")
    pr.add_argument("ids", nargs="*", metavar="ID", help="callback ids (evt_…)")
    pr.add_argument("--filing-id", help="every dead callback of this filing")
    pr.add_argument("--all-dead", action="store_true", help="every dead callback")
    pr.add_argument("--reason", help="why (required to act; recorded in the audit trail)")
    pr.add_argument("--dry-run", action="store_true", help="show what would change; change nothing")
    pr.add_argument("--chunk", type=int, default=100, help="callbacks per request (1-500)")
    add_client(pr)


def run(args: argparse.Namespace) -> int:
    if args.callbacks_command == "list":
        return int(client.run_api(_list)(args))
    chosen = [bool(args.ids), bool(args.filing_id), args.all_dead]
    if sum(chosen) != 1:
        print(
            "callbacks retry: give callback ids, or --filing-id, or --all-dead (one of them)",
            file=sys.stderr,
        )
        return client.EXIT_USAGE
    return int(client.run_api(_retry)(args))


def callback_rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            c["id"],
            c["filing_id"],
            c["event"],
            c["state"],
            c["attempts"],
            (c.get("next_attempt_at") or c.get("delivered_at") or "")[:19],
            (c.get("last_error") or "")[:200],
        ]
        for c in items
    ]


HEADERS = ["CALLBACK", "FILING", "EVENT", "STATE", "TRIES", "NEXT/DONE AT", "LAST ERROR"]


def _list(args: argparse.Namespace) -> int:
    params = {"limit": str(args.limit)}
    for name in ("state", "filing_id"):
        if getattr(args, name):
            params[name] = getattr(args, name)
    data = client.call(args, "GET", "/v1/callbacks", params=params)
    if args.json:
        cli_render.emit_json(data)
    elif data["items"]:
        cli_render.out(
            cli_render.table(HEADERS, callback_rows(data["items"]), right={4}, keep=(0, 1))
        )
    else:
        print("no callbacks match")
    return client.EXIT_OK


def _post(args: argparse.Namespace, body: dict[str, Any]) -> Any:
    return client.call(args, "POST", "/v1/callbacks/retry", body=json.dumps(body).encode())


def _retry(args: argparse.Namespace) -> int:
    chunk = max(1, min(args.chunk, 500))
    selection: dict[str, Any] = {}
    if args.ids:
        selection["ids"] = list(args.ids)
        chunk = min(len(args.ids), 500)
    elif args.filing_id:
        selection["filing_id"] = args.filing_id
    preview = _post(args, {**selection, "dry_run": True, "limit": chunk})
    if args.dry_run:
        if args.json:
            cli_render.emit_json(preview)
            return client.EXIT_OK
        print(f"would retry {preview['matched']} callbacks (dry run; nothing changed)")
        if preview["callbacks"]:
            cli_render.out(cli_render.table(HEADERS, callback_rows(preview["callbacks"])))
        if preview["matched"] > len(preview["callbacks"]):
            print(f"… and {preview['matched'] - len(preview['callbacks'])} more")
        return client.EXIT_OK
    reason = args.reason
    if not reason and sys.stdin.isatty():
        reason = input(f"retry {preview['matched']} callbacks; reason (audited): ").strip()
    if not reason:
        print("a --reason is required (it goes into the audit trail)", file=sys.stderr)
        return client.EXIT_USAGE
    progress = cli_progress.Progress(preview["matched"], "retried")
    changed: list[dict[str, Any]] = []
    try:
        while len(changed) < preview["matched"]:
            body = {**selection, "not_after": preview["as_of"], "reason": reason, "limit": chunk}
            step = _post(args, body)
            changed += step["callbacks"]
            progress.advance(step["count"])
            if step["count"] == 0 or step["remaining"] == 0:
                break
    finally:
        progress.close()
    if args.json:
        cli_render.emit_json(
            {"matched": preview["matched"], "retried": len(changed), "callbacks": changed}
        )
    else:
        print(f"retried {len(changed)} of {preview['matched']} callbacks")
        if changed:
            cli_render.out(cli_render.table(HEADERS, callback_rows(changed), right={4}))
    return client.EXIT_OK
