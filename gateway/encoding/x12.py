"""X12 interchanges: ISA/GS … GE/IEA envelopes and TA1 / 997 / 999 acknowledgements. Pure.

Envelope: the payload's transaction sets (``ST … SE``) are wrapped in one functional group
and one interchange; SE segment counts are checked, GE counts the sets, IEA counts the
groups. Control numbers are handed in (the store allocates them); ISA13 is 9 digits and
wraps after 999999999 as X12 prescribes.

Parsing reads the delimiters from the ISA segment itself (element separator at position
3, sub-element separator at 104, segment terminator at 105), so any conforming sender's
choice works.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
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
    d: Delimiters = Delimiters(),
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


# --- acknowledgements -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedAck:
    """One acknowledgement found in a TA1/997/999 document."""

    kind: Literal["TA1", "997", "999"]
    outcome: Outcome
    interchange_control: int | None = None
    group_control: int | None = None
    set_control: str | None = None
    codes: list[str] = field(default_factory=list)
    message: str = ""


_TA1 = {"A": "accepted", "E": "warning", "R": "rejected"}
_SET_STATUS = {
    "A": "accepted",
    "E": "warning",
    "M": "rejected",
    "R": "rejected",
    "W": "rejected",
    "X": "rejected",
}


def parse_acks(text: str) -> list[ParsedAck]:
    """Every TA1, and every transaction-set answer of every 997/999, in one interchange."""
    return acks_in(split_segments(text)[1])


def acks_in(segments: list[list[str]]) -> list[ParsedAck]:
    """The answers in the segments of one interchange; ``X12Error`` when there is none."""
    acks: list[ParsedAck] = []
    kind: Literal["997", "999"] | None = None
    group: int | None = None
    interchange: int | None = None
    pending_codes: list[str] = []
    set_control: str | None = None
    for seg in segments:
        tag = seg[0]
        if tag == "TA1":
            if len(seg) < 5:
                raise X12Error("TA1 needs at least 4 elements")
            status = _TA1.get(seg[4])
            if status is None:
                raise X12Error(f"TA104 {seg[4]!r} is not A, E or R")
            code = seg[5] if len(seg) > 5 else ""
            acks.append(
                ParsedAck(
                    kind="TA1",
                    outcome=status,  # type: ignore[arg-type]
                    interchange_control=_int(seg[1], "TA101"),
                    codes=[code] if code and code != "000" else [],
                )
            )
        elif tag == "ST" and len(seg) > 1 and seg[1] in ("997", "999"):
            kind = seg[1]  # type: ignore[assignment]
        elif tag == "AK1":
            group = _int(seg[2] if len(seg) > 2 else "", "AK102")
        elif tag == "AK2":
            set_control = seg[2] if len(seg) > 2 else None
            pending_codes = []
        elif tag in ("AK3", "IK3") or tag in ("AK4", "IK4"):
            code = (
                seg[4]
                if tag in ("AK3", "IK3") and len(seg) > 4
                else (seg[3] if len(seg) > 3 else "")
            )
            if code:
                pending_codes.append(f"{tag}:{code}")
        elif tag in ("AK5", "IK5") and kind is not None:
            status = _SET_STATUS.get(seg[1] if len(seg) > 1 else "")
            if status is None:
                raise X12Error(f"{tag}01 {seg[1] if len(seg) > 1 else ''!r} is not a known status")
            codes = pending_codes + [c for c in seg[2:] if c]
            acks.append(
                ParsedAck(
                    kind=kind,
                    outcome=status,  # type: ignore[arg-type]
                    interchange_control=interchange,
                    group_control=group,
                    set_control=set_control,
                    codes=codes,
                )
            )
            pending_codes, set_control = [], None
        elif (
            tag == "AK9"
            and kind is not None
            and not any(a.group_control == group and a.kind == kind for a in acks)
        ):
            status = _SET_STATUS.get(seg[1] if len(seg) > 1 else "", "rejected")
            acks.append(
                ParsedAck(
                    kind=kind,
                    outcome=status,  # type: ignore[arg-type]
                    group_control=group,
                    codes=[c for c in seg[5:] if c],
                )
            )
    if not acks:
        raise X12Error("no TA1, 997 or 999 acknowledgement in the document")
    return acks


def _int(value: str, name: str) -> int:
    if not value.strip().isdigit():
        raise X12Error(f"{name} {value!r} is not a control number")
    return int(value)
