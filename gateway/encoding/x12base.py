"""X12 basics every reader and writer shares: limits, ``X12Error``, the delimiters read
from the ISA segment itself (element separator at position 3, sub-element separator at
104, segment terminator at 105, so any conforming sender's choice works), control-number
wrapping, and splitting text into segments and transaction sets (SE counts checked).
Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway import errors

MAX_CONTROL = 999_999_999
ISA_LENGTH = 106
BOM = "\ufeff"

Outcome = Literal["accepted", "rejected", "warning"]


class X12Error(errors.InvalidInput):
    """The X12 document is not well-formed."""

    code = "invalid_x12"


@dataclass(frozen=True, slots=True)
class Delimiters:
    element: str = "*"
    sub_element: str = ">"
    segment: str = "~"
    repetition: str = "^"


def delimiters(isa: str) -> Delimiters:
    """The delimiters an ISA segment declares (``isa`` starts at ``ISA``, 106+ characters)."""
    return Delimiters(
        element=isa[3],
        sub_element=isa[104],
        segment=isa[105],
        repetition=isa[82] if isa[82] not in isa[3] else "^",
    )


def next_control(current: int) -> int:
    """The control number after ``current``: 1 … 999999999, then 1 again."""
    return 1 if current >= MAX_CONTROL else current + 1


def split_segments(text: str) -> tuple[Delimiters, list[list[str]]]:
    """Delimiters and the segments (each a list of elements) of one interchange.

    A file holding several interchanges is read by ``x12read.read``, each on its own terms.
    """
    body = text.removeprefix(BOM).lstrip()
    if not body.startswith("ISA") or len(body) < ISA_LENGTH:
        raise X12Error("an X12 interchange starts with a 106-character ISA segment")
    d = delimiters(body)
    segments = []
    for raw in body.split(d.segment):
        raw = raw.strip("\r\n ")
        if raw:
            segments.append(raw.split(d.element))
    return d, segments


def transaction_sets(text: str, d: Delimiters = Delimiters()) -> list[list[list[str]]]:
    """The ``ST … SE`` transaction sets in a payload (with or without its own envelope)."""
    if text.lstrip().startswith("ISA"):
        d, segments = split_segments(text)
    else:
        segments = [s.strip("\r\n ").split(d.element) for s in text.split(d.segment)]
        segments = [s for s in segments if s and s[0]]
    sets: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    for seg in segments:
        if seg[0] == "ST":
            if current is not None:
                raise X12Error("ST inside an open transaction set (missing SE)")
            current = [seg]
        elif current is not None:
            current.append(seg)
            if seg[0] == "SE":
                _check_se(current)
                sets.append(current)
                current = None
    if current is not None:
        raise X12Error("transaction set without SE")
    if not sets:
        raise X12Error("no ST … SE transaction set in the payload")
    return sets


def _check_se(ts: list[list[str]]) -> None:
    se = ts[-1]
    if len(se) < 3 or not se[1].isdigit():
        raise X12Error("SE needs a segment count and a control number")
    if int(se[1]) != len(ts):
        raise X12Error(f"SE01 says {se[1]} segments; the set has {len(ts)}")
    if len(ts[0]) < 3 or ts[0][2] != se[2]:
        raise X12Error("SE02 does not match ST02")
