"""X12 interchanges: ISA/GS … GE/IEA envelopes and TA1 / 997 / 999 acknowledgements. Pure.

Envelope: the payload's transaction sets (``ST … SE``) are wrapped in one functional group
and one interchange; SE segment counts are checked, GE counts the sets, IEA counts the
groups. Control numbers are handed in (the store allocates them); ISA13 is 9 digits and
wraps after 999999999 as X12 prescribes.

Parsing reads the delimiters from the ISA segment itself (element separator at position
3, sub-element separator at 104, segment terminator at 105), so any conforming sender's
choice works.

The basics (delimiters, segments, ``X12Error``) are in ``gateway.encoding.x12base`` and
the acknowledgements in ``gateway.encoding.x12acks``; their names are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gateway.encoding.x12acks import ParsedAck, acks_in, parse_acks
from gateway.encoding.x12base import (
    BOM,
    ISA_LENGTH,
    MAX_CONTROL,
    Delimiters,
    Outcome,
    X12Error,
    delimiters,
    next_control,
    split_segments,
    transaction_sets,
)

__all__ = [
    "BOM",
    "ISA_LENGTH",
    "MAX_CONTROL",
    "Delimiters",
    "EnvelopeParty",
    "Outcome",
    "ParsedAck",
    "X12Error",
    "acks_in",
    "delimiters",
    "envelope",
    "next_control",
    "parse_acks",
    "split_segments",
    "transaction_sets",
]


#: the default delimiters (frozen: one instance serves every call)
STANDARD_DELIMITERS = Delimiters()


@dataclass(frozen=True, slots=True)
class EnvelopeParty:
    qualifier: str
    id: str


def envelope(
    sets: list[list[list[str]]],
    *,
    sender: EnvelopeParty,
    receiver: EnvelopeParty,
    interchange_control: int,
    group_control: int,
    usage: Literal["T", "P"],
    functional_id: str,
    version: str = "004010",
    now: datetime,
    d: Delimiters = STANDARD_DELIMITERS,
    ack_requested: bool = True,
) -> str:
    """An interchange with one functional group holding ``sets``."""
    if not 1 <= interchange_control <= MAX_CONTROL:
        raise X12Error("interchange control number must be 1…999999999")
    e, s = d.element, d.segment
    isa = e.join(
        [
            "ISA",
            "00",
            " " * 10,
            "00",
            " " * 10,
            sender.qualifier.ljust(2)[:2],
            sender.id.ljust(15)[:15],
            receiver.qualifier.ljust(2)[:2],
            receiver.id.ljust(15)[:15],
            now.strftime("%y%m%d"),
            now.strftime("%H%M"),
            d.repetition,
            "00501" if version.startswith("005") else "00401",
            f"{interchange_control:09d}",
            "1" if ack_requested else "0",
            usage,
            d.sub_element,
        ]
    )
    if len(isa) != ISA_LENGTH - 1:  # pragma: no cover - fixed widths above
        raise AssertionError(len(isa))
    if version.startswith("004"):  # ISA11 is the standards identifier "U" before 00402
        parts = isa.split(e)
        parts[11] = "U"
        isa = e.join(parts)
    gs = e.join(
        [
            "GS",
            functional_id,
            sender.id.strip(),
            receiver.id.strip(),
            now.strftime("%Y%m%d"),
            now.strftime("%H%M"),
            str(group_control),
            "X",
            version,
        ]
    )
    out = [isa, gs]
    for n, ts in enumerate(sets, start=1):
        control = f"{n:04d}"
        body = [[*ts[0][:2], control, *ts[0][3:]], *ts[1:-1]]
        body.append(["SE", str(len(body) + 1), control])
        out.extend(e.join(seg) for seg in body)
    out.append(e.join(["GE", str(len(sets)), str(group_control)]))
    out.append(e.join(["IEA", "1", f"{interchange_control:09d}"]))
    return s.join(out) + s
