"""Codecs: a stored filing → the bytes an adapter transmits (and their media type).

* ``auto`` (default): a text payload (X12, CATAIR) goes as it is; a JSON payload goes
  as the canonical filing document.
* ``json``: always the canonical filing document (the text payload inside it).
* ``passthrough``: the payload alone, unchanged (JSON payloads serialized compactly).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from gateway import config, models

Codec = Callable[[models.Filing], tuple[str, bytes]]


def document(filing: models.Filing) -> dict[str, Any]:
    """The canonical filing document the ``json`` codec sends."""
    return {
        "id": filing.id,
        "filing_type": filing.filing_type.value,
        "environment": filing.environment.value,
        "reference": filing.reference,
        "filer_code": filing.filer_code,
        "ordering_key": filing.ordering_key,
        "due_by": models.utc_iso(filing.due_by),
        "received_at": models.utc_iso(filing.received_at),
        "content_type": filing.content_type,
        "payload": filing.payload,
        "metadata": filing.metadata,
        "body_hash": filing.body_hash,
    }


def json_codec(filing: models.Filing) -> tuple[str, bytes]:
    body = json.dumps(document(filing), separators=(",", ":"), ensure_ascii=False)
    return models.JSON_CONTENT_TYPE, body.encode()


def passthrough(filing: models.Filing) -> tuple[str, bytes]:
    if isinstance(filing.payload, str):
        return filing.content_type, filing.payload.encode()
    body = json.dumps(filing.payload, separators=(",", ":"), ensure_ascii=False)
    return models.JSON_CONTENT_TYPE, body.encode()


def auto(filing: models.Filing) -> tuple[str, bytes]:
    if isinstance(filing.payload, str):
        return passthrough(filing)
    return json_codec(filing)


CODECS: dict[str, Codec] = {"auto": auto, "json": json_codec, "passthrough": passthrough}


def for_adapter(section: config.AdapterConfig) -> Codec:
    return CODECS[section.codec]
