"""Codecs: a stored filing → the bytes an adapter transmits (and their media type).

* ``auto`` (default): a text payload (X12, CATAIR) goes as it is; a JSON payload goes
  as the canonical filing document.
* ``json``: always the canonical filing document (the text payload inside it).
* ``passthrough``: the payload alone, unchanged (JSON payloads serialized compactly).
* ``x12``: the payload's transaction sets in a fresh ISA/GS … GE/IEA envelope. It needs
  control numbers, which only the store can hand out, so it is not a plain
  ``Filing → bytes`` function: the dispatcher allocates them for the attempt and calls
  ``X12Codec.encode`` with them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from gateway import config, models
from gateway.encoding import x12

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


# bodies keep the json module's spelling byte for byte (``models.json_bytes``): a resend
# must carry what the first try did


def json_codec(filing: models.Filing) -> tuple[str, bytes]:
    return models.JSON_CONTENT_TYPE, models.json_bytes(document(filing))


def passthrough(filing: models.Filing) -> tuple[str, bytes]:
    if isinstance(filing.payload, str):
        return filing.content_type, filing.payload.encode()
    return models.JSON_CONTENT_TYPE, models.json_bytes(filing.payload)


def auto(filing: models.Filing) -> tuple[str, bytes]:
    if isinstance(filing.payload, str):
        return passthrough(filing)
    return json_codec(filing)


CODECS: dict[str, Codec] = {"auto": auto, "json": json_codec, "passthrough": passthrough}


X12_CONTENT_TYPE = "application/edi-x12"


def _party(text: str) -> x12.EnvelopeParty:
    qualifier, _, ident = text.partition(":")
    return x12.EnvelopeParty(qualifier, ident)


def usage_of(filing: models.Filing) -> Literal["T", "P"]:
    """ISA15: ``P`` for production, ``T`` (test) for cert."""
    return "P" if filing.environment is models.Environment.PRODUCTION else "T"


@dataclass(frozen=True, slots=True)
class X12Codec:
    """Wraps a filing's transaction sets in an envelope with allocated control numbers."""

    sender: str
    receiver: str
    functional_id: str
    version: str = "004010"

    def encode(
        self, filing: models.Filing, *, interchange: int, group: int, now: datetime
    ) -> tuple[str, bytes]:
        """The enveloped interchange; ``x12.X12Error`` when the payload holds no valid set."""
        if not isinstance(filing.payload, str):
            raise x12.X12Error("codec x12 needs a text payload holding X12 transaction sets")
        doc = x12.envelope(
            x12.transaction_sets(filing.payload),
            sender=_party(self.sender),
            receiver=_party(self.receiver),
            interchange_control=interchange,
            group_control=group,
            usage=usage_of(filing),
            functional_id=self.functional_id,
            version=self.version,
            now=now,
        )
        return X12_CONTENT_TYPE, doc.encode()


def for_adapter(section: config.AdapterConfig) -> Codec | X12Codec:
    if section.codec == "x12":
        if not (section.x12_sender and section.x12_receiver and section.x12_functional_id):
            raise ValueError("codec x12 needs x12_sender, x12_receiver and x12_functional_id")
        return X12Codec(
            sender=section.x12_sender,
            receiver=section.x12_receiver,
            functional_id=section.x12_functional_id,
            version=section.x12_version,
        )
    return CODECS[section.codec]
