"""TA1 / 997 / 999 acknowledgements read from the segments of one interchange: each
answer's kind, outcome, control numbers and codes. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gateway.encoding.x12base import Outcome, X12Error, split_segments


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
