"""``edi-gateway reload``: ask a running gateway to reload its config file
(``POST /v1/admin/reload``, a token with the admin scope). A refused reload exits 4 and
names the key at fault; nothing changed then. ``kill -HUP`` on ``serve`` does the same.
"""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli import client
from gateway.cli import render as cli_render


def add_parser(sub: Any, add_client: Any) -> None:
    p = sub.add_parser(
        "reload", help="reload a running gateway's config (routes, adapters, tokens, …)"
    )
    add_client(p)


def run(args: argparse.Namespace) -> int:
    return int(client.run_api(_reload)(args))


def _reload(args: argparse.Namespace) -> int:
    data = client.call(args, "POST", "/v1/admin/reload")
    if args.json:
        cli_render.emit_json(data)
        return client.EXIT_OK
    changes = data["changes"]
    print(f"reloaded: {len(changes)} key(s) changed (config {data['config_sha256'][:12]})")
    for change in changes:
        before = change.get("from", "—")
        after = change.get("to", "—")
        print(f"  {change['key']}: {before!r} → {after!r}")
    if data["adapters_changed"]:
        print(f"adapters restarted: {', '.join(data['adapters_changed'])}")
    return client.EXIT_OK
