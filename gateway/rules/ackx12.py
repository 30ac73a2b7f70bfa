"""X12 ack documents: each interchange of a TA1/997/999 file read with its own ISA (its
parties, usage and delimiters) into ``Ack``s, envelope faults reported, not fatal; and a
document with faults kept as a rejected event to show. Pure."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from gateway import ids, models
from gateway.encoding import x12, x12read


def party(qualifier: str, ident: str) -> str:
    """The store's key of an X12 party: ``ZZ:MAEU`` (qualifier, id without padding)."""
    return f"{qualifier.strip()}:{ident.strip()}"


@dataclass(frozen=True, slots=True)
class Reading:
    """The acks of a document, and the envelope faults found reading it (X12 only)."""

    acks: list[models.Ack]
    problems: list[x12read.EnvelopeError] = field(default_factory=list)


def from_x12(text: str, *, source: str, now: datetime) -> list[models.Ack]:
    """Every TA1 / 997 / 999 answer in an X12 file, correlated by control number."""
    return read_x12(text, source=source, now=now).acks


def read_x12(text: str, *, source: str, now: datetime) -> Reading:
    """Each interchange of the file read with its own ISA: its parties, usage and delimiters.

    Envelope faults are reported, not fatal: the answers that can be read are kept. When
    no interchange holds a readable answer, ``X12Error`` (422) lists every fault."""
    document = x12read.read(text)
    acks: list[models.Ack] = []
    problems = list(document.errors)
    for interchange in document.interchanges:
        isa = interchange.isa
        if len(isa) < 17:
            continue  # reported by x12read (024)
        try:
            parsed = x12.acks_in(interchange.segments)
        except x12.X12Error as exc:
            problems.append(
                x12read.EnvelopeError(
                    interchange.first_position, "ISA", "interchange", "no_ack", exc.message
                )
            )
            continue
        theirs, ours = party(isa[5], isa[6]), party(isa[7], isa[8])
        usage = isa[15].strip() if isa[15].strip() in ("T", "P") else None
        for p in parsed:
            try:
                acks.append(
                    models.Ack(
                        kind=p.kind,
                        outcome=models.AckOutcome(p.outcome),
                        interchange_control=p.interchange_control,
                        group_control=p.group_control,
                        set_control=p.set_control,
                        codes=p.codes,
                        message=p.message,
                        x12_sender=ours,
                        x12_receiver=theirs,
                        usage=usage,  # type: ignore[arg-type]
                        raw=interchange.text,
                        source=source,
                        received_at=now,
                    )
                )
            except ValidationError as exc:  # a control number out of range, a long AK202…
                first = exc.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                problems.append(
                    x12read.EnvelopeError(
                        interchange.first_position,
                        "ISA",
                        "interchange",
                        "invalid_ack",
                        f"a {p.kind} answer is unusable: {where}: {first['msg']}",
                    )
                )
    if not acks:
        why = problems[0].message if problems else "no acknowledgement in the document"
        raise x12.X12Error(
            f"no readable TA1, 997 or 999 answer: {why}",
            details=[p.as_detail() for p in problems],
        )
    return Reading(acks, problems)


PROBLEM_SOURCE = "acks"
MAX_KEPT_DOCUMENT = 64 * 1024


def problem_document(
    body: bytes | str,
    *,
    content_type: str,
    origin: str,
    reason: str,
    details: list[dict[str, Any]],
    now: datetime,
) -> models.RejectedEvent:
    """An ack document with envelope faults (or none readable), to keep and show.

    Kept once per content (``event_id`` is its hash) under source ``acks``, listed by
    ``GET /v1/rejected-events?source=acks`` with each fault and its segment position."""
    raw = body.encode() if isinstance(body, str) else body
    try:
        text = raw[:MAX_KEPT_DOCUMENT].decode("utf-8")
    except UnicodeDecodeError:
        text = "base64:" + base64.b64encode(raw[:MAX_KEPT_DOCUMENT]).decode()
    return models.RejectedEvent(
        id=ids.new_id("rej"),
        source=PROBLEM_SOURCE,
        origin=origin,
        event_id="sha256:" + hashlib.sha256(raw).hexdigest(),
        reason=reason,
        details=details,
        body=text,
        content_type=content_type or None,
        received_at=now,
    )


def envelope_reason(problems: Sequence[x12read.EnvelopeError]) -> str:
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    where = f"segment {first.position} ({first.segment})"
    return f"X12 envelope error at {where}: {first.message}{more}"
