"""``edi-gateway outages``: coming calendar windows, and announced outages add|list|remove.

``outages --next N`` reads the calendars from the config (no gateway needed) and the
announced outages from the store the config names (or from a gateway with ``--url``).
``add``, ``list`` and ``remove`` talk to a running gateway (scope ``operate`` to change).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio

from gateway import config, errors, models, service
from gateway.cli import client
from gateway.store import open as store_open
from gateway.store import schema

EXIT_OK, EXIT_USAGE = 0, 2


def add_parser(sub: Any, add_config: Any, add_client: Any) -> None:
    p = sub.add_parser(
        "outages",
        help="coming maintenance windows (--next N) and announced outages (add|list|remove)",
    )
    p.add_argument("--next", type=int, metavar="N", dest="next_n", help="windows per calendar")
    p.add_argument("--from", dest="from_time", metavar="TIME", help="as if it were TIME (ISO 8601)")
    p.add_argument("--url", default=None, help="read announced outages from this gateway")
    p.add_argument("--token", default=None)
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    add_config(p)
    actions = p.add_subparsers(dest="outages_command", metavar="ACTION")
    pa = actions.add_parser("add", help="announce an outage of an adapter or an environment")
    target = pa.add_mutually_exclusive_group(required=True)
    target.add_argument("--adapter")
    target.add_argument("--environment", choices=[e.value for e in models.Environment])
    pa.add_argument("--starts-at", help="ISO 8601 with offset (default: now)")
    pa.add_argument("--ends-at", help="ISO 8601 with offset (default: until removed)")
    pa.add_argument("--reason", default="")
    pa.add_argument("--reference", help="e.g. the CSMS message number")
    add_client(pa)
    add_client(actions.add_parser("list", help="announced outages not yet over"))
    pr = actions.add_parser("remove", help="remove an announced outage; sending resumes")
    pr.add_argument("id")
    add_client(pr)


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "outages_command", None)
    if action == "add":
        return int(client.run_api(_add)(args))
    if action == "list":
        return int(client.run_api(_list)(args))
    if action == "remove":
        return int(client.run_api(_remove)(args))
    return _next(args)


def _add(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"reason": args.reason}
    for key in ("adapter", "environment", "starts_at", "ends_at", "reference"):
        value = getattr(args, key)
        if value:
            body[key] = value
    data = client.call(args, "POST", "/v1/outages", body=json.dumps(body).encode())
    _out(args, data, "added " + format_outage(data))
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    data = client.call(args, "GET", "/v1/outages")
    lines = [format_outage(o) for o in data["outages"]] or ["no announced outages"]
    _out(args, data, "\n".join(lines))
    return EXIT_OK


def _remove(args: argparse.Namespace) -> int:
    data = client.call(args, "DELETE", f"/v1/outages/{args.id}")
    _out(args, data, "removed " + format_outage(data))
    return EXIT_OK


def _next(args: argparse.Namespace) -> int:
    cfg = config.load_config(args.config)
    n = args.next_n or 10
    now = datetime.now(UTC)
    if args.from_time:
        try:
            now = datetime.fromisoformat(args.from_time.replace("Z", "+00:00"))
        except ValueError:
            print(f"--from {args.from_time!r} is not an ISO 8601 time", flush=True)
            return EXIT_USAGE
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
    calendars = service.calendar_windows(cfg, n, now)
    announced, note = _announced(args, cfg, now)
    if args.json:
        print(json.dumps({"calendars": calendars, "outages": announced, "note": note}, indent=2))
        return EXIT_OK
    lines: list[str] = []
    for name, cal in calendars.items():
        used = f"  (adapters: {', '.join(cal['adapters'])})" if cal["adapters"] else ""
        lines.append(f"{name}  next {n} windows, {cal['timezone']} | UTC{used}")
        for w in cal["windows"]:
            lines.append("  " + format_window(w, cal["timezone"]))
    lines.append("announced outages:")
    lines += ["  " + format_outage(o) for o in announced] or [f"  {note or 'none'}"]
    print("\n".join(lines))
    return EXIT_OK


def format_window(w: dict[str, Any], zone: str) -> str:
    """One window as ``local start → end | UTC start → end  policy``."""
    su, eu = (datetime.fromisoformat(w[k].replace("Z", "+00:00")) for k in ("start", "end"))
    s, e = (t.astimezone(ZoneInfo(zone)) for t in (su, eu))
    local_end = e.strftime("%H:%M %Z") if e.date() == s.date() else e.strftime("%a %H:%M %Z")
    utc_end = eu.strftime("%H:%MZ") if eu.date() == su.date() else eu.strftime("%a %H:%MZ")
    return (
        f"{s.strftime('%a %Y-%m-%d %H:%M %Z')} → {local_end:<13} | "
        f"{su.strftime('%a %Y-%m-%d %H:%MZ')} → {utc_end:<10} {w['policy']}"
        + "".join(f" {t}={a}" for t, a in (w.get("types") or {}).items())
    )


def format_outage(o: dict[str, Any]) -> str:
    target = f"adapter {o['adapter']}" if o.get("adapter") else f"environment {o['environment']}"
    end = o.get("ends_at") or "until removed"
    ref = f" [{o['reference']}]" if o.get("reference") else ""
    reason = f" {o['reason']}" if o.get("reason") else ""
    return f"{o['id']}  {target}  {o['starts_at']} → {end}{ref}{reason}"


def _announced(
    args: argparse.Namespace, cfg: config.Config, now: datetime
) -> tuple[list[dict[str, Any]], str]:
    if args.url:
        data = client.call(args, "GET", "/v1/outages")
        return list(data["outages"]), ""
    url = cfg.gateway.store
    if (
        url.startswith("sqlite:///")
        and not Path(url.removeprefix("sqlite:///").partition("?")[0]).exists()
    ):
        return [], f"none (the store {url} does not exist yet)"

    async def _read() -> list[dict[str, Any]]:
        store = store_open.open_store(url)
        await store.open()
        try:
            if await store.schema_version() < schema.SCHEMA_VERSION:
                return []
            return [o.model_dump(mode="json") for o in await store.list_outages(now=now)]
        finally:
            await store.close()

    try:
        return anyio.run(_read), ""
    except errors.StoreError as exc:
        return [], f"unknown (store: {exc})"


def _out(args: argparse.Namespace, data: Any, human: str) -> None:
    print(json.dumps(data, indent=2) if args.json else human)
