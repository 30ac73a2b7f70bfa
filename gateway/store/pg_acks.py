"""Acknowledgements, ack deadlines and X12 control numbers on PostgreSQL (schema v5),
the same semantics as ``sqlite_acks``; callbacks are in ``pg_callbacks``.

Concurrency, beyond what ``postgres.py`` says:

* ``record_ack`` locks the ordering key and then the answered delivery row before the
  pure decision sees its state, so two acks of one delivery are decided one after the
  other; the ack row goes in with ``ON CONFLICT (fingerprint) DO NOTHING`` *before*
  anything changes, so a concurrent duplicate changes nothing and reads back the first;
* X12 control numbers are in ``pg_x12``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import asyncpg

from gateway import errors, ids, models
from gateway.audit import chain as audit
from gateway.rules import lifecycle
from gateway.store import base, logic, pg_audit, pg_mixin, pg_ops, pg_sql, rows
from gateway.store.base import Actor

Conn = asyncpg.Connection

_TARGET = (
    "SELECT d.seq, d.id, d.filing_id, d.filing_seq, d.adapter, d.ordering_key, d.state, "
    "d.attempts, f.received_at FROM deliveries d JOIN filings f ON f.seq = d.filing_seq "
)
_INSERT_ACK = """
INSERT INTO acks (id, fingerprint, kind, outcome, unsolicited, codes, message, document, raw,
    source, received_at, matched_delivery_id, matched_filing_id, effect)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (fingerprint) DO NOTHING
RETURNING seq
"""
_APPLY_ACK = """
UPDATE deliveries SET state = $1, ack = $2, ack_overdue = FALSE, hold_until_ack = FALSE,
    ack_due_at = CASE WHEN $3 THEN NULL ELSE ack_due_at END,
    available_at = COALESCE($4, available_at), last_error = COALESCE($5, last_error),
    updated_at = $6
WHERE seq = $7
"""
_ACK_COLS = "id, document, raw, matched_delivery_id, matched_filing_id, effect, seq"
_FLAG_OVERDUE = """
UPDATE deliveries SET ack_overdue = TRUE, updated_at = $1
WHERE state = 'delivered' AND NOT ack_overdue AND ack_due_at IS NOT NULL AND ack_due_at <= $1
RETURNING id, filing_id, adapter, ack_due_at
"""
_EXTEND = """
UPDATE deliveries SET ack_due_at = ack_due_at + $1
WHERE adapter = $2 AND state = 'delivered' AND NOT ack_overdue AND ack_due_at IS NOT NULL
"""
_RESEND = f"""
UPDATE deliveries SET state = 'pending', available_at = $1, ack_due_at = NULL,
    ack_overdue = FALSE, hold_until_ack = FALSE, ack_conflict = FALSE, lease_owner = NULL,
    updated_at = $1
WHERE filing_seq = $2 AND state IN {logic.RESEND_FROM_SQL} RETURNING id, adapter, ordering_key
"""
_CLOSE = f"""
UPDATE deliveries SET ack_due_at = NULL, ack_overdue = FALSE, hold_until_ack = FALSE,
    ack = CASE WHEN state = 'delivered' THEN $1 ELSE ack END, ack_conflict = FALSE,
    updated_at = $2
WHERE filing_seq = $3
  AND (state = 'delivered' OR (ack_conflict AND state IN {logic.CLOSE_CONFLICT_SQL}))
RETURNING id, adapter, state
"""
# --- acknowledgements -------------------------------------------------------------------


def fingerprint(ack: models.Ack) -> str:
    """Same ack content (wherever it came from, whenever) → same fingerprint."""
    body = ack.model_dump(mode="json", exclude={"received_at", "source"})
    return hashlib.sha256(audit.canonical(body).encode()).hexdigest()


async def _correlate(conn: Conn, ack: models.Ack) -> tuple[Any, str | None, int | None]:
    """The delivery row an ack answers (or None), the filing id it belongs to, and the
    attempt it answers when its X12 control numbers say so."""
    row = None
    answers: int | None = None
    if ack.delivery_id:
        row = await conn.fetchrow(_TARGET + "WHERE d.id = $1", ack.delivery_id)
    elif ack.group_control is not None or ack.interchange_control is not None:
        column = "group_control" if ack.group_control is not None else "interchange_control"
        params: list[Any] = [ack.group_control or ack.interchange_control]
        where = [f"a.{column} = $1"]
        for name, value in (
            ("usage", ack.usage),
            ("sender", ack.x12_sender),
            ("receiver", ack.x12_receiver),
        ):
            if value is not None:
                params.append(value)
                where.append(f"a.{name} = ${len(params)}")
        allocation = await conn.fetchrow(
            "SELECT a.delivery_id, a.attempt FROM x12_allocations a WHERE "
            f"{' AND '.join(where)} ORDER BY a.seq DESC LIMIT 1",
            *params,
        )
        if allocation is not None:
            answers = allocation[1]
            row = await conn.fetchrow(_TARGET + "WHERE d.id = $1", allocation[0])
    elif ack.reference is not None and ack.filing_type is not None:
        key = (ack.reference, ack.filing_type.value)
        if ack.unsolicited:
            found = await conn.fetchval(
                "SELECT id FROM filings WHERE reference = $1 AND filing_type = $2 "
                "ORDER BY seq DESC LIMIT 1",
                *key,
            )
            return None, found, None
        # the oldest delivery still waiting for its answer, else the latest one
        row = await conn.fetchrow(
            _TARGET + "WHERE f.reference = $1 AND f.filing_type = $2 AND d.state = 'delivered' "
            "ORDER BY d.seq LIMIT 1",
            *key,
        ) or await conn.fetchrow(
            _TARGET + "WHERE f.reference = $1 AND f.filing_type = $2 ORDER BY d.seq DESC LIMIT 1",
            *key,
        )
    if row is not None:
        # lock the key (as every change to a key's rows does), then the row, and re-read it
        await pg_ops.lock_keys(conn, {row[5]})
        row = await conn.fetchrow(_TARGET + "WHERE d.seq = $1 FOR UPDATE OF d", row[0])
    return row, None if row is None else row[2], answers


async def _existing(conn: Conn, fp: str) -> models.AckRecord | None:
    found = await conn.fetchrow(f"SELECT {_ACK_COLS} FROM acks WHERE fingerprint = $1", fp)
    return None if found is None else _ack_record(found, duplicate=True)


async def record_ack(
    conn: Conn, ack: models.Ack, decide: base.AckDecide, actor: Actor, now: datetime
) -> models.AckRecord:
    fp = fingerprint(ack)
    if (seen := await _existing(conn, fp)) is not None:
        return seen
    now_us = rows.us(now)
    row, filing_id, answers_attempt = await _correlate(conn, ack)
    target = None
    if row is not None:
        target = base.AckTarget(
            delivery_id=row[1],
            filing_id=row[2],
            adapter=row[4],
            state=models.DeliveryState(row[6]),
            attempts=row[7],
            filing_received_at=rows.dt(row[8]),
            answers_attempt=answers_attempt,
        )
    if target is None:
        decision = base.AckDecision("history" if filing_id is not None else "unmatched")
    else:
        decision = decide(ack, target, now)
    ack_id = ids.new_id("ack")
    inserted = await conn.fetchval(
        _INSERT_ACK,
        ack_id,
        fp,
        ack.kind,
        None if ack.outcome is None else ack.outcome.value,
        ack.unsolicited,
        json.dumps(ack.codes),
        ack.message,
        ack.model_dump_json(exclude={"raw"}),
        ack.raw,
        ack.source,
        now_us,
        None if target is None else target.delivery_id,
        filing_id,
        decision.effect,
    )
    if inserted is None:  # the same ack, committed by someone else just now
        seen = await _existing(conn, fp)
        if seen is None:  # pragma: no cover - ON CONFLICT saw a row that is now gone
            raise errors.StoreError(f"ack {fp} vanished")
        return seen
    trail = pg_audit.Trail(now)
    trail.add(
        "ack.received",
        actor=actor,
        filing_id=filing_id,
        delivery_id=None if target is None else target.delivery_id,
        details={
            "ack_id": ack_id,
            "kind": ack.kind,
            "outcome": None if ack.outcome is None else ack.outcome.value,
            "codes": ack.codes,
            "unsolicited": ack.unsolicited,
            "effect": decision.effect,
            "source": ack.source,
        },
    )
    if target is not None and decision.effect == "conflict":
        await conn.execute(
            "UPDATE deliveries SET ack_conflict = TRUE, updated_at = $1 WHERE id = $2",
            now_us,
            target.delivery_id,
        )
        trail.add(
            "delivery.ack_conflict",
            actor=actor,
            filing_id=target.filing_id,
            delivery_id=target.delivery_id,
            details=logic.conflict_details(target, ack_id, ack, decision),
        )
    if target is not None and row is not None and decision.state is not None:
        await _apply(conn, trail, ack, ack_id, row, target, decision, actor, now)
    await trail.flush(conn)
    if decision.state is not None:  # a hold released, or a resend scheduled
        await conn.execute("SELECT pg_notify($1, 'ack')", pg_sql.CHANNEL)
    stored = await conn.fetchrow(f"SELECT {_ACK_COLS} FROM acks WHERE id = $1", ack_id)
    return _ack_record(stored, duplicate=False)


async def _apply(
    conn: Conn,
    trail: pg_audit.Trail,
    ack: models.Ack,
    ack_id: str,
    row: Any,
    target: base.AckTarget,
    decision: base.AckDecision,
    actor: Actor,
    now: datetime,
) -> None:
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
    await conn.execute(
        _APPLY_ACK,
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
        for delivery_id, filing_id, fs in await conn.fetch(
            pg_sql.BLOCK_SUCCESSORS, now_us, adapter, ordering_key, seq
        ):
            trail.add(
                "delivery.blocked",
                actor=base.SYSTEM,
                filing_id=filing_id,
                delivery_id=delivery_id,
                details={"adapter": adapter, "ordering_key": ordering_key},
            )
            touched.add(fs)
    await pg_ops.refresh_status(conn, touched, now_us)


def _ack_record(r: Any, *, duplicate: bool) -> models.AckRecord:
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


async def list_acks(
    conn: Conn, matched: bool | None, filing_id: str | None, limit: int
) -> list[models.AckRecord]:
    where: list[str] = []
    params: list[Any] = []
    if matched is not None:
        where.append("matched_filing_id IS NOT NULL" if matched else "matched_filing_id IS NULL")
    if filing_id is not None:
        params.append(filing_id)
        where.append(f"matched_filing_id = ${len(params)}")
    sql = f"SELECT {_ACK_COLS} FROM acks"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY seq DESC LIMIT ${len(params) + 1}"
    return [_ack_record(r, duplicate=False) for r in await conn.fetch(sql, *params, limit)]


# --- ack deadlines and operator actions -------------------------------------------------


async def flag_overdue(conn: Conn, now: datetime) -> list[tuple[str, str, str]]:
    flagged = await conn.fetch(_FLAG_OVERDUE, rows.us(now))
    if flagged:
        trail = pg_audit.Trail(now)
        for delivery_id, filing_id, adapter, due in flagged:
            trail.add(
                "delivery.ack_overdue",
                actor=base.SYSTEM,
                filing_id=filing_id,
                delivery_id=delivery_id,
                details={"adapter": adapter, "ack_due_at": rows.iso(rows.dt(due))},
            )
        await trail.flush(conn)
    return [(r[0], r[1], r[2]) for r in flagged]


async def resend_filing(
    conn: Conn, filing_id: str, actor: Actor, now: datetime, reason: str
) -> base.Action:
    filing_seq, ordering_key = await pg_ops._filing_seq(conn, filing_id)
    await pg_ops.lock_keys(conn, {ordering_key})
    await pg_ops.refuse_in_flight(conn, filing_seq, filing_id, lifecycle.Event.OPERATOR_RESEND)
    now_us = rows.us(now)
    changed = await conn.fetch(_RESEND, now_us, filing_seq)
    if not changed:
        raise errors.Refused(
            "conflict",
            f"filing {filing_id} has no sent delivery to resend",
            details={"id": filing_id},
        )
    trail = pg_audit.Trail(now)
    touched = {filing_seq}
    for delivery_id, adapter, _ in changed:
        trail.add(
            "delivery.resent",
            actor=actor,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={"adapter": adapter, "reason": reason},
        )
    for adapter, key in sorted({(r[1], r[2]) for r in changed}):
        touched |= await pg_ops.reblock(conn, trail, actor, adapter, key, now_us)
    await pg_ops.refresh_status(conn, touched, now_us)
    await trail.flush(conn)
    await conn.execute("SELECT pg_notify($1, 'resend')", pg_sql.CHANNEL)
    return base.Action(filing_id, [r[0] for r in changed])


async def close_ack(
    conn: Conn, filing_id: str, actor: Actor, now: datetime, reason: str
) -> base.Action:
    filing_seq, ordering_key = await pg_ops._filing_seq(conn, filing_id)
    await pg_ops.lock_keys(conn, {ordering_key})
    note = json.dumps({"closed_by": actor.name, "reason": reason, "closed_at": rows.iso(now)})
    changed = await conn.fetch(_CLOSE, note, rows.us(now), filing_seq)
    if not changed:
        raise errors.Refused(
            "conflict",
            f"filing {filing_id} has no delivery waiting for an ack or in conflict",
            details={"id": filing_id},
        )
    trail = pg_audit.Trail(now)
    for delivery_id, adapter, state in changed:
        trail.add(
            "delivery.ack_closed",
            actor=actor,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={"adapter": adapter, "reason": reason, "state": state},
        )
    await trail.flush(conn)
    await conn.execute("SELECT pg_notify($1, 'close_ack')", pg_sql.CHANNEL)  # hold released
    return base.Action(filing_id, [r[0] for r in changed])


class AcksMixin(pg_mixin.Transactional):
    """The ack, ack-deadline and control-number methods of ``PostgresStore``."""

    async def record_ack(
        self, ack: models.Ack, *, decide: base.AckDecide, actor: Actor, now: datetime
    ) -> models.AckRecord:
        return await self._write(lambda c: record_ack(c, ack, decide, actor, now))

    async def list_acks(
        self, *, matched: bool | None, filing_id: str | None, limit: int
    ) -> list[models.AckRecord]:
        return await self._read(lambda c: list_acks(c, matched, filing_id, limit))

    async def flag_overdue(self, *, now: datetime) -> list[tuple[str, str, str]]:
        return await self._write(lambda c: flag_overdue(c, now))

    async def extend_ack_deadlines(self, adapter: str, *, by_s: float, now: datetime) -> int:
        status = await self._write(lambda c: c.execute(_EXTEND, round(by_s * 1_000_000), adapter))
        return int(status.rsplit(" ", 1)[-1])

    async def resend_filing(
        self, filing_id: str, *, actor: Actor, now: datetime, reason: str
    ) -> base.Action:
        return await self._write(lambda c: resend_filing(c, filing_id, actor, now, reason))

    async def close_ack(
        self, filing_id: str, *, actor: Actor, now: datetime, reason: str
    ) -> base.Action:
        return await self._write(lambda c: close_ack(c, filing_id, actor, now, reason))
