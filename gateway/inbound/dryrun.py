"""``edi-gateway normalize --source NAME FILE``: what an event becomes, stored nowhere.

Reads the file (a plain internal event, or a structured CloudEvent), runs the source's
normalizer, resolves each filing as the gateway would (keys, ordering key, routes) and
prints it. Opens no store and no broker.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from gateway import config, errors
from gateway.inbound.intake import RawEvent, prepare_raw
from gateway.inbound.normalizers import Sources
from gateway.rules import normalize, router

EXIT_OK, EXIT_NOT_FOUND, EXIT_REFUSED = 0, 3, 4


def cmd_normalize(args: argparse.Namespace) -> int:
    cfg = config.load_config(args.config)
    sources = Sources(cfg)
    try:
        source = sources.get(args.source)
    except errors.NotFound as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_NOT_FOUND
    body = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    name = "stdin" if args.file == "-" else Path(args.file).name
    raw = RawEvent(body=body, origin=f"file:{name}", event_id=name, default_key=f"dry-run:{name}")
    try:
        prepared = prepare_raw(sources, source, raw)
        filings = []
        for event in prepared.events:
            filing = normalize.normalize(
                event,
                filing_id="fil_DRYRUN",
                received_at=datetime.now(UTC),
                source=prepared.provenance,
                source_event_id=prepared.event_id,
            )
            adapters = router.route(filing, cfg.routes)
            filings.append(
                {
                    **filing.model_dump(mode="json", exclude={"id", "received_at", "body_hash"}),
                    "adapters": adapters,
                }
            )
    except errors.GatewayError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.details:
            print(json.dumps(exc.details, indent=2, default=str), file=sys.stderr)
        return EXIT_REFUSED
    out = {"source": source.name, "normalizer": source.described, "stored": False}
    print(json.dumps({**out, "filings": filings}, indent=2, default=str))
    return EXIT_OK
