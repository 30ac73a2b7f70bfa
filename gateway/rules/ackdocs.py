"""Ack documents in: a JSON ack (one object or a list), a JSON wrapper holding an X12
document, or a raw X12 interchange (``gateway.rules.ackx12``) → ``Ack``s, each keeping
its raw text. Pure."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from gateway import errors, models
from gateway.encoding import x12, x12read
from gateway.rules.ackx12 import Reading, read_x12

X12_CONTENT_TYPES = frozenset({"application/edi-x12", "application/x12", "text/x12"})
MAX_ACKS_PER_DOCUMENT = 1000


def is_x12(content_type: str, text: str) -> bool:
    return content_type.split(";")[0].strip().lower() in X12_CONTENT_TYPES or (
        text.lstrip().startswith("ISA")
    )


def parse_document(
    content_type: str, body: bytes | str, *, source: str, now: datetime
) -> list[models.Ack]:
    """The acks in one document; ``MalformedInput`` (400) when it is neither JSON nor X12,
    ``InvalidInput`` (422) when it is but holds no valid ack."""
    return read_document(content_type, body, source=source, now=now).acks


def read_document(content_type: str, body: bytes | str, *, source: str, now: datetime) -> Reading:
    """``parse_document`` that also hands back the envelope faults of an X12 document."""
    try:  # utf-8-sig: a byte-order mark before ISA or { is no part of the document
        text = body.decode("utf-8-sig") if isinstance(body, bytes) else body
    except UnicodeDecodeError as exc:
        raise errors.InvalidInput("an ack document must be UTF-8 text") from exc
    text = text.removeprefix(x12.BOM)
    if not text.strip():
        raise errors.InvalidInput("the ack document is empty")
    if is_x12(content_type, text) and not text.lstrip().startswith(("{", "[")):
        return read_x12(text, source=source, now=now)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise errors.MalformedInput(f"an ack is JSON or a TA1/997/999 document: {exc}") from exc
    return from_json_reading(data, source=source, now=now)


def from_json(data: Any, *, source: str, now: datetime) -> list[models.Ack]:
    return from_json_reading(data, source=source, now=now).acks


def from_json_reading(data: Any, *, source: str, now: datetime) -> Reading:
    """JSON acks, or JSON wrappers each holding an X12 document."""
    items = data if isinstance(data, list) else [data]
    if not items or len(items) > MAX_ACKS_PER_DOCUMENT:
        raise errors.InvalidInput(f"send 1 to {MAX_ACKS_PER_DOCUMENT} acks")
    out: list[models.Ack] = []
    problems: list[x12read.EnvelopeError] = []
    for i, item in enumerate(items):
        loc = f"[{i}]" if isinstance(data, list) else "body"
        if not isinstance(item, dict):
            raise errors.InvalidInput(
                "an ack is a JSON object", details=[{"loc": loc, "msg": "expected an object"}]
            )
        if "document" in item:  # {"content_type": "application/edi-x12", "document": "ISA…"}
            doc = item["document"]
            if not isinstance(doc, str) or set(item) - {"document", "content_type"}:
                raise errors.InvalidInput(
                    "a wrapped ack holds only `document` (text) and `content_type`",
                    details=[{"loc": loc, "msg": "document"}],
                )
            reading = read_x12(doc, source=source, now=now)
            out.extend(reading.acks)
            problems.extend(reading.problems)
            continue
        fields = {k: v for k, v in item.items() if k not in ("kind", "source", "received_at")}
        try:
            ack = models.Ack.model_validate(
                {**fields, "source": source, "received_at": now, "kind": "json"}
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or loc
            msg = first["msg"].removeprefix("Value error, ")
            raise errors.InvalidInput(
                f"{where}: {msg}", details=[{"loc": where, "msg": msg}]
            ) from exc
        if ack.raw is None:
            ack = ack.model_copy(update={"raw": json.dumps(item, sort_keys=True)})
        out.append(ack)
    return Reading(out, problems)
