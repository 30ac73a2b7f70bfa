"""Archive records shaped as the live store's rows (gateway/store/sql/sqlite/migrations.sql):
a filing row with its deliveries (receipts inside), acks, callbacks and audit rows."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def us(at: datetime) -> int:
    return int((at - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000)


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def make_record(
    name: str = "entry_summary",
    n: int = 0,
    *,
    received_at: datetime | None = None,
    status: str = "acknowledged",
    ack_codes: tuple[str, ...] = ("A",),
    **overrides: Any,
) -> dict[str, Any]:
    """Record ``n`` made from ``examples/<name>.json`` as the store would hand it over."""
    event = example(name)
    received = received_at or T0 + timedelta(minutes=n)
    fid = f"fil_{name.replace('.', '_')}_{n:06d}"
    payload = event["payload"]
    filing = {
        "seq": n + 1,
        "id": fid,
        "filing_type": event["filing_type"],
        "environment": event["environment"],
        "reference": event["reference"],
        "filer_code": event["filer_code"],
        "idempotency_key": f"{event['idempotency_key']}-{n}",
        "body_hash": "ab" * 32,
        "ordering_key": event.get("ordering_key", event["reference"]),
        "due_by": None,
        "content_type": event.get("content_type", "application/json"),
        "payload": payload if isinstance(payload, str) else json.dumps(payload),
        "payload_is_json": 0 if isinstance(payload, str) else 1,
        "callback_url": None,
        "metadata": json.dumps(event.get("metadata", {})),
        "source": "api",
        "received_at": us(received),
        "status": status,
        "updated_at": us(received + timedelta(hours=1)),
        "at_risk_at": None,
        "source_event_id": None,
    }
    filing.update(overrides)
    did = f"dlv_{n:06d}"
    return {
        "filing": filing,
        "deliveries": [
            {
                "id": did,
                "filing_id": fid,
                "adapter": "ace",
                "state": status,
                "attempts": 1,
                "receipt": json.dumps({"message_id": f"MQ{n:08d}", "bytes": 2048}),
                "ack": json.dumps({"outcome": "accepted"}),
                "created_at": us(received),
                "updated_at": us(received + timedelta(hours=1)),
                "delivered_at": us(received + timedelta(minutes=2)),
            }
        ],
        "acks": [
            {
                "id": f"ack_{n:06d}",
                "kind": "ace_response",
                "outcome": "accepted",
                "codes": json.dumps(list(ack_codes)),
                "message": "ACCEPTED",
                "document": "",
                "received_at": us(received + timedelta(minutes=30)),
                "matched_delivery_id": did,
                "matched_filing_id": fid,
                "effect": "acknowledged",
            }
        ],
        "callbacks": [
            {
                "id": f"cb_{n:06d}",
                "filing_id": fid,
                "url": "https://tms.example/hooks",
                "event": "filing.acknowledged",
                "state": "delivered",
                "attempts": 1,
            }
        ],
        "audit": [
            {
                "seq": 3 * n + i + 1,
                "at": (received + timedelta(minutes=i)).isoformat(),
                "actor": "gateway",
                "filing_id": fid,
                "delivery_id": did if i else None,
                "event": event_name,
                "details": json.dumps({}),
                "prev_hash": "0" * 64,
                "hash": f"{3 * n + i:064x}",
            }
            for i, event_name in enumerate(["filing.accepted", "delivery.sent", "ack.recorded"])
        ],
    }


def key_line(kid: str, key: bytes | None = None) -> str:
    return f"{kid}:{base64.b64encode(key or os.urandom(32)).decode()}"
