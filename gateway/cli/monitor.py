"""CLI views of a running gateway (issue 7): ``top``, the ``list`` table, bulk retry/cancel.

``top`` redraws a table of ``GET /v1/overview`` every ``--interval`` seconds (``--once``
or ``--json`` for scripts). ``retry``/``cancel`` with filters instead of an id preview
the set (``--dry-run`` stops there), then change it in chunks pinned to the preview's
``as_of``, with a progress bar on stderr; the ``--reason`` lands in the audit trail.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from gateway import models
from gateway.cli import client
from gateway.cli import progress as cli_progress
from gateway.cli import render as cli_render

EXIT_OK, EXIT_USAGE = 0, 2

#: column headings of the delivery states, in the order of the lifecycle
STATE_COLUMNS = [
    ("pending", "PEND"),
    ("in_flight", "INFL"),
    ("waiting_retry", "RETRY"),
    ("deferred", "DEFER"),
    ("blocked", "BLOCK"),
    ("delivered", "DELIV"),
    ("acknowledged", "ACK"),
    ("rejected", "REJ"),
    ("dead", "DEAD"),
    ("cancelled", "CANC"),
]


def add_parsers(sub: Any, add_client: Any) -> None:
    p = sub.add_parser("top", help="live table of the queue, adapters and outages")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    p.add_argument("--once", action="store_true", help="print one table and exit")
    p.add_argument("--filer", help="the queue by filer: this filer code only")
    add_client(p)


def add_bulk_arguments(p: argparse.ArgumentParser) -> None:
    """Filters that turn ``retry``/``cancel`` into a bulk operation."""
    p.add_argument("--state", choices=[s.value for s in models.DeliveryState])
    p.add_argument("--adapter")
    p.add_argument("--filing-type", choices=[t.value for t in models.FilingType])
    p.add_argument("--environment", choices=[e.value for e in models.Environment])
    p.add_argument("--reason", help="why (required to act; recorded in the audit trail)")
    p.add_argument("--dry-run", action="store_true", help="show what would change; change nothing")
    p.add_argument("--chunk", type=int, default=100, help="deliveries per request (1-500)")


# --- tables ---------------------------------------------------------------------------------


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def format_top(ov: dict[str, Any]) -> str:
    states = [s for s, _ in STATE_COLUMNS]
    rows = []
    for a in ov["adapters"]:
        health = a.get("health") or {}
        rows.append(
            [
                a["name"],
                "ok" if health.get("ok") else ("-" if not health else "FAIL"),
                (a.get("breaker") or {}).get("state", "-"),
                (a.get("gate") or {}).get("state", "-"),
                *[a["counts"].get(s, 0) for s in states],
                _age(a.get("oldest_waiting_age_s")),
            ]
        )
    rows.append(["TOTAL", "", "", "", *[ov["totals"].get(s, 0) for s in states], ""])
    headers = ["ADAPTER", "HEALTH", "BREAKER", "GATE", *[h for _, h in STATE_COLUMNS], "OLDEST"]
    out = [
        f"edi-gateway top · {ov['generated_at']} · figures as of {ov['snapshot_at']}"
        f" · at risk: {ov['at_risk']}",
        "",
        cli_render.text_table(headers, rows, right=set(range(4, 4 + len(states) + 1))),
        "",
    ]
    for name, cal in ov.get("calendars", {}).items():
        for w in cal["windows"][:1]:
            when = "NOW" if w.get("current") else "next"
            out.append(
                f"{name:<16} {when}: {w['start_local'][:16]} → {w['end_local'][:16]} "
                f"{cal['timezone']} ({w['policy']})"
            )
    filers = ov.get("filers") or []
    if filers:
        out += ["", _filer_table(filers), ""]
    outages = ov.get("outages", [])
    out.append(f"announced outages: {len(outages) or 'none'}")
    for o in outages:
        out.append(
            f"  {o['id']} {o.get('adapter') or o.get('environment')} "
            f"{o['starts_at']} → {o.get('ends_at') or 'until removed'} {o.get('reason', '')}"
        )
    return "\n".join(out)


#: filing statuses shown in the queue by filer (unsettled ones)
FILER_COLUMNS = ("pending", "in_progress", "retrying", "deferred", "blocked")


def _filer_table(filers: list[dict[str, Any]]) -> str:
    """The queue by filer code: unsettled filings by status, the most waiting first."""
    rows = [
        [f["filer_code"], *[f["counts"].get(s, 0) for s in FILER_COLUMNS], f["waiting"]]
        for f in filers
    ]
    headers = ["FILER", *[s.upper().replace("_", " ") for s in FILER_COLUMNS], "WAITING"]
    return cli_render.text_table(headers, rows, right=set(range(1, len(FILER_COLUMNS) + 2)))


def _overview(args: argparse.Namespace) -> Any:
    params = {"filer": args.filer} if args.filer else None
    return client.call(args, "GET", "/v1/overview", params=params)


@client.run_api
def cmd_top(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(_overview(args), indent=2))
        return EXIT_OK
    if args.once:
        print(format_top(_overview(args)))
        return EXIT_OK
    if not cli_render.is_tty():  # a pipe or a log: one table per refresh, no screen codes
        try:
            while True:
                print(format_top(_overview(args)) + "\n", flush=True)
                time.sleep(max(args.interval, 0.2))
        except KeyboardInterrupt:
            return EXIT_OK
    from rich.live import Live
    from rich.text import Text

    def frame() -> Text:
        text = format_top(_overview(args))
        return Text.from_ansi(text + "\n\n(ctrl-c to quit)")

    try:
        with Live(frame(), console=cli_render.console(), screen=True, auto_refresh=False) as live:
            while True:
                time.sleep(max(args.interval, 0.2))
                live.update(frame(), refresh=True)
    except KeyboardInterrupt:
        return EXIT_OK


# --- bulk -----------------------------------------------------------------------------------


#: the bulk progress bar (rate and ETA; a live bar on a terminal)
Progress = cli_progress.Progress


def _filter(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("state", "adapter", "filing_type", "environment"):
        value = getattr(args, name, None)
        if value:
            out[name] = value
    return out


def has_filter(args: argparse.Namespace) -> bool:
    return bool(_filter(args))


def _post(args: argparse.Namespace, body: dict[str, Any]) -> Any:
    return client.call(
        args, "POST", f"/v1/deliveries/{args.command}", body=json.dumps(body).encode()
    )


@client.run_api
def cmd_bulk(args: argparse.Namespace) -> int:
    action, flt = args.command, _filter(args)
    chunk = max(1, min(args.chunk, 500))
    preview = _post(args, {**flt, "dry_run": True, "limit": chunk})
    verb = "retried" if action == "retry" else "cancelled"
    if args.dry_run:
        if args.json:
            print(json.dumps(preview, indent=2))
            return EXIT_OK
        print(f"would {action} {preview['matched']} deliveries (dry run; nothing changed)")
        rows = [[d["id"], d["filing_id"], d["adapter"], d["state"]] for d in preview["deliveries"]]
        if rows:
            print(cli_render.text_table(["DELIVERY", "FILING", "ADAPTER", "STATE"], rows))
        if preview["matched"] > len(rows):
            print(f"… and {preview['matched'] - len(rows)} more")
        return EXIT_OK
    reason = args.reason
    if not reason and sys.stdin.isatty():
        reason = input(f"{action} {preview['matched']} deliveries; reason (audited): ").strip()
    if not reason:
        print("a --reason is required (it goes into the audit trail)", file=sys.stderr)
        return EXIT_USAGE
    progress = Progress(preview["matched"], verb)
    changed: list[dict[str, Any]] = []
    try:
        while len(changed) < preview["matched"]:
            body = {**flt, "not_after": preview["as_of"], "reason": reason, "limit": chunk}
            step = _post(args, body)
            changed += step["deliveries"]
            progress.advance(step["count"])
            if step["count"] == 0 or step["remaining"] == 0:
                break
    finally:
        progress.close()
    result = {"action": action, "matched": preview["matched"], "changed": len(changed)}
    if args.json:
        print(json.dumps({**result, "deliveries": changed}, indent=2))
    else:
        print(f"{verb} {len(changed)} of {preview['matched']} deliveries")
    return EXIT_OK
