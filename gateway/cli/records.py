"""``edi-gateway records …``: the records of filings, live and archived (issue 20).

``search`` and ``show`` answer over the live store and the archive; ``restore`` brings an
archived filing back (audited, with a reason); ``verify`` checks every segment against the
hash entered in the audit chain (exit 1 on a missing, extra or altered one); ``hold``
places, releases and lists legal holds; ``purge`` deletes the segments past retention
(``--dry-run`` lists them). Like ``audit``, they run in this process on the config's store
and archive directory (``[records] dir``), with the keys of ``EDIGW_RECORDS_KEYS``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from gateway import config, errors, values
from gateway.audit import redact
from gateway.cli.audit import when
from gateway.cli.client import EXIT_FAILED, EXIT_NOT_FOUND, EXIT_OK, EXIT_REFUSED
from gateway.cli.local import require_migrated
from gateway.clock import SystemClock
from gateway.records import errors as rerrors
from gateway.service import sealing
from gateway.service.records import Records, Search
from gateway.store import open as store_open

#: ``records search`` flags → search fields
TERMS = {
    "reference": "reference",
    "entry": "entry_number",
    "bol": "bill_of_lading",
    "isf": "isf_transaction_number",
    "ack": "ack_code",
}


def add_parser(sub: Any, add_config: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("records", help="search, show, restore, verify, hold and purge records")
    rs = p.add_subparsers(dest="records_command", required=True, metavar="ACTION")

    def action(name: str, text: str) -> argparse.ArgumentParser:
        a: argparse.ArgumentParser = rs.add_parser(name, help=text)
        add_config(a)
        a.add_argument("--json", action="store_true", help="print JSON for scripts")
        return a

    a = action("search", "find filings, live and archived, newest first")
    for flag, field in TERMS.items():
        a.add_argument(f"--{flag}", help=f"{field.replace('_', ' ')} (any spelling)")
    a.add_argument("--filer", help="filer code")
    a.add_argument("--type", help="filing type")
    a.add_argument("--env", help="cert or production")
    a.add_argument("--state", help="filing status (acknowledged, rejected, dead, …)")
    a.add_argument("--from", dest="received_from", type=when, help="received at or after")
    a.add_argument("--to", dest="received_to", type=when, help="received before")
    a.add_argument("--limit", type=int, default=50)
    a.add_argument("--cursor", help="the next page (printed after a page)")
    a = action("show", "a filing's whole record: every row, the exact payload sent")
    a.add_argument("id")
    a = action("restore", "bring an archived filing back into the live store (audited)")
    a.add_argument("id")
    a.add_argument("--reason", required=True, help="why (goes into the audit trail)")
    a = action("verify", "check every segment against the hash in the audit chain")
    a.add_argument("--deep", action="store_true", help="also open every record (keys, frames)")
    a = action("purge", "delete the segments past retention and not held (audited)")
    mode = a.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dry-run", action="store_true", help="list what would go")
    mode.add_argument("--yes", action="store_true", help="purge")
    h = rs.add_parser("hold", help="legal holds: add, release, list")
    hs = h.add_subparsers(dest="hold_command", required=True, metavar="ACTION")
    for name, text in (("add", "place a hold"), ("release", "release a hold"), ("list", "list")):
        a = hs.add_parser(name, help=text)
        add_config(a)
        a.add_argument("--json", action="store_true", help="print JSON for scripts")
        if name == "add":
            a.add_argument("--kind", required=True, help="filing, reference or filer_code")
            a.add_argument("--value", required=True, help="the filing id, reference or filer")
        if name == "release":
            a.add_argument("id")
        if name != "list":
            a.add_argument("--reason", required=True, help="why (goes into the audit trail)")


def run(args: argparse.Namespace) -> int:
    command = args.records_command
    if command == "hold":
        command = f"hold_{args.hold_command}"
    fn: Callable[[argparse.Namespace, Records], Awaitable[int]] = COMMANDS[command]
    try:
        return anyio.run(_on_records, args, fn)
    except errors.NotFound as exc:
        print(f"not found: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except rerrors.BadQuery as exc:
        print(f"invalid --{exc.field}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (errors.InvalidInput, errors.Conflict) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED


async def _on_records(
    args: argparse.Namespace, fn: Callable[[argparse.Namespace, Records], Awaitable[int]]
) -> int:
    cfg = config.load_config(args.config)
    redactor = redact.Redactor(cfg.audit.redact_paths)
    store = store_open.open_store(cfg.gateway.store, redactor=redactor)
    await store.open()
    try:
        await require_migrated(store)
        records = Records(store=store, cfg=cfg, clock=SystemClock(), environ=os.environ)
        try:
            await sealing.check_keys(store)  # a key in use missing or wrong: refused, named
            return await fn(args, records)
        finally:
            records.close()
    finally:
        await store.close()


def _actor() -> values.Actor:
    return values.Actor(name=f"cli:{getpass.getuser()}")


def _out(args: argparse.Namespace, data: Any, human: str) -> None:
    print(json.dumps(data, indent=2, default=str) if args.json else human)


async def _search(args: argparse.Namespace, records: Records) -> int:
    terms = {field: getattr(args, flag) for flag, field in TERMS.items() if getattr(args, flag)}
    s = Search(
        terms=terms,
        filer_code=args.filer,
        filing_type=args.type,
        environment=args.env,
        state=args.state,
        received_from=args.received_from,
        received_to=args.received_to,
        limit=args.limit,
        cursor=args.cursor,
    )
    items, cursor = await records.search(s)
    lines = [
        f"{i['id']}  {i['received_at'][:19]}  {i['filing_type']:<16} {i['environment']:<10} "
        f"{i['filer_code']:<8} {i['state']:<12} {i['where']:<7}  {i['reference']}"
        for i in items
    ]
    if cursor:
        lines.append(f"more: --cursor {cursor}")
    _out(args, {"items": items, "next_cursor": cursor}, "\n".join(lines) or "no records")
    return EXIT_OK


async def _show(args: argparse.Namespace, records: Records) -> int:
    data = await records.show(args.id)
    rec = data["record"]
    f = rec["filing"]
    where = "live" if data["where"] == "live" else f"archived in {data['segment']}"
    lines = [
        f"{f['id']}  {f['filing_type']} {f['environment']}  reference {f['reference']}  "
        f"filer {f['filer_code']}  status {f['status']}  ({where})",
        f"content type {f['content_type']}; the payload as stored and sent:",
        str(f["payload"]),
    ]
    for d in rec.get("deliveries", []):
        lines.append(f"delivery {d['id']} → {d['adapter']}: {d['state']}, {d['attempts']} attempts")
        if d.get("receipt"):
            lines.append(f"  receipt {d['receipt']}")
    for k in rec.get("acks", []):
        lines.append(f"ack {k['id']}: {k['kind']} {k['outcome']} codes {k['codes']}")
    lines.append("history:")
    lines += [f"  {a['seq']:>6}  {a['at']}  {a['event']:<28} {a['actor']}" for a in rec["audit"]]
    _out(args, data, "\n".join(lines))
    return EXIT_OK


async def _restore(args: argparse.Namespace, records: Records) -> int:
    data = await records.restore(args.id, reason=args.reason, actor=_actor())
    _out(args, data, f"restored {args.id} from {data['restored_from']}")
    return EXIT_OK


async def _verify(args: argparse.Namespace, records: Records) -> int:
    report = await records.verify(deep=args.deep)
    problems = [p.__dict__ for p in report.problems]
    data = {"ok": report.passed, "segments": len(report.ok), "problems": problems}
    human = [f"{p.kind}: {p.message}" for p in report.problems]
    human.append(
        f"{len(report.ok)} segments verify" if report.passed else f"{len(problems)} problems"
    )
    _out(args, data, "\n".join(human))
    return EXIT_OK if report.passed else EXIT_FAILED


async def _purge(args: argparse.Namespace, records: Records) -> int:
    gone = await records.purge(dry_run=args.dry_run, actor=_actor())
    verb = "would purge" if args.dry_run else "purged"
    human = [f"{verb} {g['segment']} ({g['records']} records)" for g in gone] or ["nothing"]
    _out(args, {"dry_run": args.dry_run, "segments": gone}, "\n".join(human))
    return EXIT_OK


async def _hold_add(args: argparse.Namespace, records: Records) -> int:
    hold_id = await records.place_hold(args.kind, args.value, args.reason, _actor())
    _out(args, {"id": hold_id}, f"hold {hold_id} on {args.kind} {args.value}")
    return EXIT_OK


async def _hold_release(args: argparse.Namespace, records: Records) -> int:
    await records.release_hold(args.id, args.reason, _actor())
    _out(args, {"id": args.id, "released": True}, f"released {args.id}")
    return EXIT_OK


async def _hold_list(args: argparse.Namespace, records: Records) -> int:
    holds = await records.holds()
    human = [
        f"{h['id']}  {h['kind']:<10} {h['value']:<20} since {h['placed_at'][:10]} by "
        f"{h['placed_by']}"
        + (f", released {h['released_at'][:10]}" if h["released_at"] else "")
        + f"  ({h['reason']})"
        for h in holds
    ]
    _out(args, {"holds": holds}, "\n".join(human) or "no holds")
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, Records], Awaitable[int]]] = {
    "search": _search,
    "show": _show,
    "restore": _restore,
    "verify": _verify,
    "purge": _purge,
    "hold_add": _hold_add,
    "hold_release": _hold_release,
    "hold_list": _hold_list,
}
