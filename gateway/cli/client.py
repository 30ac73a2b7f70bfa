"""CLI commands that talk to a running gateway over its HTTP API."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

import aiohttp
import anyio

from gateway import config, errors

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_UNAVAILABLE = range(6)

#: a CLI command: parsed arguments in, exit code out
Command = Callable[[argparse.Namespace], int]


class ApiFailure(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def base_url(args: argparse.Namespace) -> str:
    if args.url:
        url: str = args.url
        return url.rstrip("/")
    try:
        cfg = config.load_config(args.config)
        listen = cfg.gateway.listen
    except errors.ConfigError:
        listen = "127.0.0.1:8080"
    host, _, port = listen.rpartition(":")
    if host in ("0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def call(
    args: argparse.Namespace,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    async def _go() -> Any:
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if args.token:
            hdrs["Authorization"] = f"Bearer {args.token}"
        timeout = aiohttp.ClientTimeout(total=30)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(
                method, base_url(args) + path, data=body, params=params, headers=hdrs
            ) as response,
        ):
            text = await response.text()
            try:
                data = json.loads(text) if text else None
            except json.JSONDecodeError:
                data = {"error": {"code": "bad_response", "message": text[:200]}}
            if response.status >= 400:
                raise ApiFailure(response.status, data)
            return data

    return anyio.run(_go)


def run_api(fn: Command) -> Command:
    """Wrap a command: API failures and connection errors become exit codes."""

    def wrapped(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except ApiFailure as exc:
            err = (exc.body or {}).get("error", {}) if isinstance(exc.body, dict) else {}
            if getattr(args, "json", False):
                print(json.dumps(exc.body, indent=2))
            else:
                print(
                    f"error {exc.status} {err.get('code', '')}: {err.get('message', '')}",
                    file=sys.stderr,
                )
                details = err.get("details")
                if isinstance(details, list):
                    for d in details[:10]:
                        print(f"  {d.get('loc', '')}: {d.get('msg', '')}", file=sys.stderr)
            if exc.status == 404:
                return EXIT_NOT_FOUND
            if exc.status >= 500:
                return EXIT_UNAVAILABLE
            return EXIT_REFUSED
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            print(f"cannot reach the gateway at {base_url(args)}: {exc}", file=sys.stderr)
            return EXIT_UNAVAILABLE

    return wrapped


def _out(args: argparse.Namespace, data: Any, human: str) -> None:
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(human)


def format_filing(f: dict[str, Any]) -> str:
    """A filing and a table of its deliveries (states coloured on a terminal)."""
    from gateway.cli import render as cli_render

    lines = [
        f"{f['id']}  {f['status'].upper()}",
        f"  {f['filing_type']} ({f['environment']})  reference {f['reference']}  "
        f"filer {f['filer_code']}",
        f"  received {f['received_at']}  ordering key {f['ordering_key']}",
    ]
    rows = [
        [
            d["id"],
            d["adapter"],
            d["state"],
            d["attempts"],
            d.get("next_attempt_at") or "",
            (d.get("last_error") or "")[:200],
        ]
        for d in f.get("deliveries", [])
    ]
    if rows:
        headers = ["DELIVERY", "ADAPTER", "STATE", "TRIES", "NEXT ATTEMPT", "LAST ERROR"]
        table = cli_render.render(cli_render.table(headers, rows, right={3}))
        lines += ["", *table.splitlines()]
    return "\n".join(lines)


def read_file_arg(path: str) -> bytes | None:
    """The bytes of a FILE argument (``-``: standard input); None, said on stderr, when
    it cannot be read (the caller exits EXIT_USAGE)."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        print(f"cannot read {path}: {exc}", file=sys.stderr)
        return None


@run_api
def cmd_submit(args: argparse.Namespace) -> int:
    raw = read_file_arg(args.file)
    if raw is None:
        return EXIT_USAGE
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    data = call(args, "POST", "/v1/filings", body=raw, headers=headers)
    verb = "accepted" if data.get("created") else "already accepted (same idempotency key)"
    _out(
        args,
        data,
        f"{data['id']} {verb}: {data['status']} → "
        + ", ".join(d["adapter"] for d in data["deliveries"]),
    )
    return EXIT_OK


@run_api
def cmd_status(args: argparse.Namespace) -> int:
    data = call(args, "GET", f"/v1/filings/{args.id}")
    _out(args, data, format_filing(data))
    return EXIT_OK


@run_api
def cmd_list(args: argparse.Namespace) -> int:
    params = {"limit": str(args.limit)}
    for name in (
        "status",
        "state",
        "filing_type",
        "environment",
        "reference",
        "adapter",
        "since",
        "until",
        "cursor",
    ):
        value = getattr(args, name)
        if value:
            params[name] = value
    data = call(args, "GET", "/v1/filings", params=params)
    from gateway.cli import render

    _out(args, data, render.format_list(data))
    return EXIT_OK


@run_api
def cmd_action(args: argparse.Namespace) -> int:
    data = call(args, "POST", f"/v1/filings/{args.id}/{args.command}")
    _out(args, data, format_filing(data))
    return EXIT_OK


def cmd_adapters(args: argparse.Namespace) -> int:
    if args.url:
        return run_api(_adapters_remote)(args)
    cfg = config.load_config(args.config)
    from gateway import registry

    kinds = registry.available_kinds()
    data = {
        "configured": [
            {"name": n, "type": s.type, "factory": s.factory, "concurrency": s.concurrency}
            for n, s in cfg.adapters.items()
        ],
        "available_types": kinds,
    }
    lines = ["configured adapters:"]
    lines += [
        f"  {n:<14} {s.type or s.factory}  concurrency {s.concurrency}"
        for n, s in cfg.adapters.items()
    ]
    lines += ["available types:"] + [f"  {k:<14} {v}" for k, v in sorted(kinds.items())]
    _out(args, data, "\n".join(lines))
    return EXIT_OK


def _adapters_remote(args: argparse.Namespace) -> int:
    from gateway.cli import render as cli_render

    data = call(args, "GET", "/v1/adapters")
    rows = []
    for a in data["adapters"]:
        health = a.get("health") or {}
        counts = (
            ", ".join(f"{k} {v}" for k, v in sorted(a["deliveries"].items())) or "no deliveries"
        )
        rows.append([a["name"], a["type"], "ok" if health.get("ok") else "NOT OK", counts])
    text = cli_render.render(cli_render.table(["ADAPTER", "TYPE", "HEALTH", "DELIVERIES"], rows))
    _out(args, data, text)
    return EXIT_OK
