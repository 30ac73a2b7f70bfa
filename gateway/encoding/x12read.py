"""Reading X12 files as VANs deliver them: every interchange on its own terms. Pure.

A file may hold several interchanges (a VAN batching one partner's 997 before another's),
each with its own delimiters, parties and usage indicator, so each ISA is read afresh. A
UTF-8 byte-order mark and CR/LF or LF after each segment are tolerated.

The envelopes are checked as X12 prescribes and as the TA1 / AK9 / AK5 codes name the
faults: IEA02 = ISA13 (``001``) and IEA01 = the number of groups (``021``), GE02 = GS06
(``4``) and GE01 = the number of sets (``5``), SE02 = ST02 (``3``) and SE01 = the number
of segments from ST to SE (``4``), and every header has its trailer (``023`` / ``3`` /
``2``). Each fault is reported with its position: the 1-based number of the segment in
the file. A fault does not stop the reading: what can be read still is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gateway.encoding import x12

Level = Literal["interchange", "group", "set", "file"]


@dataclass(frozen=True, slots=True)
class EnvelopeError:
    """One fault of an envelope, where it is, and the X12 code that names it."""

    position: int  # 1-based number of the segment in the file
    segment: str  # the tag of the segment at fault (IEA, GE, SE, …)
    level: Level
    code: str  # TA1 I18 (interchange), AK905/IK905 (group), AK502/IK502 (set)
    message: str

    def as_detail(self) -> dict[str, str | int]:
        """The shape of the gateway's error details: ``loc`` names the place."""
        return {
            "loc": f"segment {self.position} ({self.segment})",
            "position": self.position,
            "level": self.level,
            "code": self.code,
            "msg": self.message,
        }


@dataclass(slots=True)
class Interchange:
    """One ISA … IEA as found in the file."""

    delimiters: x12.Delimiters
    segments: list[list[str]]
    first_position: int  # the ISA's segment number in the file
    text: str  # the interchange as received (ISA up to its IEA's terminator)
    errors: list[EnvelopeError] = field(default_factory=list)

    @property
    def isa(self) -> list[str]:
        return self.segments[0]


@dataclass(slots=True)
class Document:
    """The interchanges of a file, and every envelope fault found in it."""

    interchanges: list[Interchange]
    errors: list[EnvelopeError]


def read(text: str) -> Document:
    """Every interchange of ``text``; ``X12Error`` when not even the first ISA is readable."""
    body = text.removeprefix(x12.BOM)
    start = len(body) - len(body.lstrip())
    if not body[start:].startswith("ISA") or len(body) - start < x12.ISA_LENGTH:
        raise x12.X12Error("an X12 interchange starts with a 106-character ISA segment")
    interchanges: list[Interchange] = []
    errors: list[EnvelopeError] = []
    position = 0
    while True:
        if len(body) - start < x12.ISA_LENGTH:
            errors.append(
                EnvelopeError(
                    position + 1, "ISA", "interchange", "024", "truncated ISA: fewer than 106 chars"
                )
            )
            break
        d = x12.delimiters(body[start:])
        found = _interchange(body, start, d, position)
        interchanges.append(found.interchange)
        errors.extend(found.interchange.errors)
        position += len(found.interchange.segments)
        rest = body[found.end :]
        start = found.end + len(rest) - len(rest.lstrip())
        if start >= len(body):
            break
        if not body.startswith("ISA", start):
            tag = body[start : start + 3]
            errors.append(
                EnvelopeError(
                    position + 1, tag, "file", "024", "data after IEA that does not start an ISA"
                )
            )
            break
    return Document(interchanges, errors)


@dataclass(frozen=True, slots=True)
class _Found:
    interchange: Interchange
    end: int  # offset just past the interchange's last segment terminator


def _interchange(body: str, start: int, d: x12.Delimiters, before: int) -> _Found:
    segments: list[list[str]] = []
    at = start
    while at < len(body):
        cut = body.find(d.segment, at)
        chunk = body[at:] if cut < 0 else body[at:cut]
        raw = chunk.strip("\r\n ")
        if segments and _starts_isa(raw):  # the next interchange: this one has no IEA
            at += len(chunk) - len(chunk.lstrip("\r\n "))
            break
        at = len(body) if cut < 0 else cut + len(d.segment)
        if raw:
            segments.append(raw.split(d.element))
            if segments[-1][0] == "IEA":
                break
    interchange = Interchange(d, segments, before + 1, body[start:at].rstrip("\r\n "))
    interchange.errors = validate(segments, first_position=before + 1)
    return _Found(interchange, at)


def _starts_isa(raw: str) -> bool:
    return raw.startswith("ISA") and (len(raw) == 3 or not raw[3].isalnum())


def validate(segments: list[list[str]], *, first_position: int = 1) -> list[EnvelopeError]:
    """The envelope faults of one interchange's segments (``segments[0]`` is its ISA)."""
    checker = _Checker(segments, first_position)
    for i, seg in enumerate(segments[1:], start=1):
        handle = checker.handlers.get(seg[0])
        if handle is not None:
            handle(i, seg)
    checker.finish()
    return checker.out


class _Checker:
    """Walks one interchange, keeping the open group and set, recording each fault."""

    def __init__(self, segments: list[list[str]], first_position: int) -> None:
        self.segments = segments
        self.first = first_position
        self.out: list[EnvelopeError] = []
        self.groups = 0
        self.group: tuple[str, int] | None = None  # (GS06, sets so far)
        self.open_set: tuple[int, str] | None = None  # (index of ST, ST02)
        self.closed = False
        self.handlers = {
            "GS": self.gs,
            "ST": self.st,
            "SE": self.se,
            "GE": self.ge,
            "IEA": self.iea,
        }
        isa = segments[0]
        if len(isa) != 17:
            self.fault(0, "interchange", "024", f"ISA has {len(isa) - 1} elements, not 16")
        self.icn = isa[13] if len(isa) > 13 else ""
        if not (len(self.icn) == 9 and self.icn.isdigit()):
            self.fault(0, "interchange", "018", f"ISA13 {self.icn!r} is not a 9-digit number")

    def fault(self, index: int, level: Level, code: str, message: str) -> None:
        tag = self.segments[index][0] if index < len(self.segments) else "end"
        self.out.append(EnvelopeError(self.first + index, tag, level, code, message))

    def gs(self, i: int, seg: list[str]) -> None:
        if self.group is not None:
            self.fault(i, "group", "3", f"GS {self.group[0]} has no GE before the next GS")
        self.group, self.groups = (_el(seg, 6), 0), self.groups + 1

    def st(self, i: int, seg: list[str]) -> None:
        if self.open_set is not None:
            self.fault(i, "set", "2", f"ST {self.open_set[1]} has no SE before the next ST")
        self.open_set = (i, _el(seg, 2))
        if self.group is not None:
            self.group = (self.group[0], self.group[1] + 1)

    def se(self, i: int, seg: list[str]) -> None:
        if self.open_set is None:
            return
        start, control = self.open_set
        if _el(seg, 2) != control:
            self.fault(i, "set", "3", f"SE02 {_el(seg, 2)!r} does not match ST02 {control!r}")
        count = i - start + 1
        if _el(seg, 1) != str(count):
            self.fault(i, "set", "4", f"SE01 says {_el(seg, 1)!r} segments; the set has {count}")
        self.open_set = None

    def ge(self, i: int, seg: list[str]) -> None:
        if self.open_set is not None:
            self.fault(i, "set", "2", f"ST {self.open_set[1]} has no SE before GE")
            self.open_set = None
        if self.group is None:
            self.fault(i, "group", "3", "GE without a GS")
            return
        control, sets = self.group
        if _el(seg, 2) != control:
            self.fault(i, "group", "4", f"GE02 {_el(seg, 2)!r} does not match GS06 {control!r}")
        if _el(seg, 1) != str(sets):
            self.fault(i, "group", "5", f"GE01 says {_el(seg, 1)!r} sets; the group has {sets}")
        self.group = None

    def iea(self, i: int, seg: list[str]) -> None:
        if self.group is not None:
            self.fault(i, "group", "3", f"GS {self.group[0]} has no GE before IEA")
        if _el(seg, 2) != self.icn:
            self.fault(
                i, "interchange", "001", f"IEA02 {_el(seg, 2)!r} does not match ISA13 {self.icn!r}"
            )
        if _el(seg, 1) != str(self.groups):
            self.fault(
                i, "interchange", "021", f"IEA01 says {_el(seg, 1)!r} groups; found {self.groups}"
            )
        self.closed = True

    def finish(self) -> None:
        if self.closed:
            return
        end = len(self.segments)
        if self.open_set is not None:
            self.fault(end, "set", "2", f"ST {self.open_set[1]} has no SE")
        if self.group is not None:
            self.fault(end, "group", "3", f"GS {self.group[0]} has no GE")
        self.fault(end, "interchange", "023", f"ISA {self.icn} has no IEA")


def _el(segment: list[str], n: int) -> str:
    return segment[n].strip() if len(segment) > n else ""
