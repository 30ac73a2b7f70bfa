"""Acknowledgements (schema v5), written once for both backends: record and list them.
Ack deadlines and the operator's actions on the ack wait are in ``ackwait``, X12 control
numbers in ``x12gaps``. Named queries: ``sql/<dialect>/acks.sql``.

An ack is correlated to the delivery it answers (by delivery id, by the X12 control
numbers allocated for one attempt, or by reference and filing type), deduplicated by a
fingerprint of its content, and its pure decision (``gateway.rules.acks``) is applied in
the same transaction: a move of the delivery (a hold released, a resend scheduled, a
rejection blocking the ordering key's successors) or a conflict flag for a person.

How they stay right with several PostgreSQL processes (on SQLite the one writer
serializes everything, and the locks below are no-ops):

* ``record_ack`` locks the ordering key and then the answered delivery row before the
  pure decision sees its state, so two acks of one delivery are decided one after the
  other; the ack row goes in with ``ON CONFLICT (fingerprint) DO NOTHING`` *before*
  anything changes, so a concurrent duplicate changes nothing and reads back the first.

A change that lets a delivery go on (a hold released, a resend scheduled) announces
work (NOTIFY on PostgreSQL) once it commits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway import errors, ids, models, values
from gateway.audit import chain as audit
from gateway.audit import events
from gateway.rules.acks import AckDecision, AckTarget
from gateway.store import rows
from gateway.store.sansio import Body, Cx, Where, q, sql
from gateway.store.status import block_successors, lock_keys, refresh_status
from gateway.store.trail import Trail
from gateway.values import Actor


def fingerprint(ack: models.Ack) -> str:
    """Same ack content (wherever it came from, whenever) → same fingerprint."""
    body = ack.model_dump(mode="json", exclude={"received_at", "source"})
    return hashlib.sha256(audit.canonical(body).encode()).hexdigest()


def _correlate(cx: Cx, ack: models.Ack) -> Body[tuple[Any, str | None, int | None]]:
    """The delivery row an ack answers (or None), locked, the filing id it belongs to,
    and the attempt it answers when its X12 control numbers say so."""
    row: Any = None
    answers: int | None = None
    if ack.delivery_id:
        row = yield q("one", "ack_target_by_id", ack.delivery_id)
    elif ack.group_control is not None or ack.interchange_control is not None:
        column = "group_control" if ack.group_control is not None else "interchange_control"
        w = Where()
        w.add(f"a.{column} = {w.arg(ack.group_control or ack.interchange_control)}")
        w.eq("a.usage", ack.usage)
        w.eq("a.sender", ack.x12_sender)
        w.eq("a.receiver", ack.x12_receiver)
        text = f"SELECT a.delivery_id, a.attempt FROM x12_allocations a{w}"
        allocation = yield sql("one", f"{text} ORDER BY a.seq DESC LIMIT 1", *w.params)
        if allocation is not None:
            answers = allocation[1]
            row = yield q("one", "ack_target_by_id", allocation[0])
    elif ack.reference is not None and ack.filing_type is not None:
        key = (ack.reference, ack.filing_type.value)
        if ack.unsolicited:
            found = yield q("val", "ack_unsolicited_filing", *key)
            return None, found, None
        # the oldest delivery still waiting for its answer, else the latest one
        row = yield q("one", "ack_target_waiting_by_reference", *key)
        if row is None:
            row = yield q("one", "ack_target_latest_by_reference", *key)
    if row is not None:
        # lock the key (as every change to a key's rows does), then the row, and re-read it
        yield lock_keys([row[5]])
        row = yield q("one", "ack_target_lock", row[0])
    return row, None if row is None else row[2], answers


def record_ack(
    cx: Cx, ack: models.Ack, *, decide: values.AckDecide, actor: Actor, now: datetime
) -> Body[models.AckRecord]:
    """Correlate, deduplicate and record one ack, and apply its decision."""
    fp = fingerprint(ack)
    seen = yield q("one", "ack_by_fingerprint", fp)
    if seen is not None:
        return _ack_record(seen, duplicate=True)
    now_us = rows.us(now)
    row, filing_id, answers_attempt = yield from _correlate(cx, ack)
    if row is None:
        target = None
        decision = AckDecision("history" if filing_id is not None else "unmatched")
    else:
        target = AckTarget(
            delivery_id=row[1],
            filing_id=row[2],
            adapter=row[4],
            state=models.DeliveryState(row[6]),
            attempts=row[7],
            filing_received_at=rows.dt(row[8]),
            answers_attempt=answers_attempt,
        )
        decision = decide(ack, target, now)
    ack_id = ids.new_id("ack")
    document = ack.model_dump_json(exclude={"raw"})
    delivery_id = None if target is None else target.delivery_id
    inserted = yield q(
        "val",
        "ack_insert",
        ack_id,
        fp,
        ack.kind,
        None if ack.outcome is None else ack.outcome.value,
        ack.unsolicited,
        json.dumps(ack.codes),
        ack.message,
        document,
        ack.raw,
        ack.source,
        now_us,
        delivery_id,
        filing_id,
        decision.effect,
    )
    if inserted is None:  # the same ack, committed by someone else just now
        seen = yield q("one", "ack_by_fingerprint", fp)
        if seen is None:  # pragma: no cover - ON CONFLICT saw a row that is now gone
            raise errors.StoreError(f"ack {fp} vanished")
        return _ack_record(seen, duplicate=True)
    trail = Trail(now, cx.redactor)
    trail.add(
        "ack.received",
        actor=actor,
        filing_id=filing_id,
        delivery_id=delivery_id,
        details=events.received_details(ack, ack_id, decision.effect),
    )
    if target is not None and decision.effect == "conflict":
        yield q("run", "ack_flag_conflict", now_us, target.delivery_id)
        trail.add(
            "delivery.ack_conflict",
            actor=actor,
            filing_id=target.filing_id,
            delivery_id=target.delivery_id,
            details=events.conflict_details(target, ack_id, ack, decision),
        )
    if target is not None and decision.state is not None:
        yield from _apply(cx, trail, ack, ack_id, row, target, decision, actor, now)
    # announce a hold released, or a resend scheduled
    yield from trail.flush(notify=None if decision.state is None else "ack")
    return _ack_record(
        (ack_id, document, ack.raw, delivery_id, filing_id, decision.effect), duplicate=False
    )


def _apply(
    cx: Cx,
    trail: Trail,
    ack: models.Ack,
    ack_id: str,
    row: Any,
    target: AckTarget,
    decision: AckDecision,
    actor: Actor,
    now: datetime,
) -> Body[None]:
    """Apply an ack's decision to its delivery (and, on rejection, block the key)."""
    assert decision.state is not None
    now_us = rows.us(now)
    seq, filing_seq, adapter, ordering_key = row[0], row[3], row[4], row[5]
    summary = {
        "ack_id": ack_id,
        "kind": ack.kind,
        "outcome": None if ack.outcome is None else ack.outcome.value,
        "codes": ack.codes,
        "message": ack.message,
        "received_at": rows.iso(now),
    }
    yield q(
        "run",
        "ack_apply",
        decision.state.value,
        json.dumps(summary),
        decision.state is models.DeliveryState.WAITING_RETRY,
        rows.us_or_none(decision.at),
        decision.error,
        now_us,
        seq,
    )
    details: dict[str, Any] = {"adapter": adapter, "ack_id": ack_id, "codes": ack.codes}
    if decision.at is not None:
        details["next_attempt_at"] = rows.iso(decision.at)
    trail.add(
        f"delivery.{decision.effect}",
        actor=actor,
        filing_id=target.filing_id,
        delivery_id=target.delivery_id,
        details=details,
    )
    touched = {filing_seq}
    if decision.state is models.DeliveryState.REJECTED:
        touched |= yield from block_successors(cx, trail, adapter, ordering_key, seq, now_us)
    yield from refresh_status(cx, touched, now_us)


def _ack_record(r: Sequence[Any], *, duplicate: bool) -> models.AckRecord:
    ack = models.Ack.model_validate_json(r[1])
    if r[2] is not None:
        ack = ack.model_copy(update={"raw": r[2]})
    return models.AckRecord(
        id=r[0],
        matched=r[4] is not None,
        duplicate=duplicate,
        effect=r[5],
        delivery_id=r[3],
        filing_id=r[4],
        ack=ack,
    )


def list_acks(
    cx: Cx, *, matched: bool | None, filing_id: str | None, limit: int
) -> Body[list[models.AckRecord]]:
    w = Where()
    if matched is not None:
        w.add(f"matched_filing_id IS {'NOT ' if matched else ''}NULL")
    w.eq("matched_filing_id", filing_id)
    text = "SELECT id, document, raw, matched_delivery_id, matched_filing_id, effect FROM acks"
    found = yield sql("all", f"{text}{w} ORDER BY seq DESC LIMIT {w.arg(limit)}", *w.params)
    return [_ack_record(r, duplicate=False) for r in found]
