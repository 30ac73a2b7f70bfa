"""SQLite transaction bodies for acknowledgements, ack deadlines and X12 control numbers
(schema v5; callbacks are in ``sqlite_callbacks``). They run on the writer (or reader)
thread of ``sqlite.py``, inside the transaction its ``_write`` opened, and reuse
``sqlite_audit``, ``sqlite_ops`` and ``sqlite_actions``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import datetime
from typing import Any

from gateway import errors, ids, models
from gateway.audit import chain as audit
from gateway.encoding import x12
from gateway.rules import lifecycle
from gateway.store import base, logic, rows, sqlite_actions, sqlite_audit, sqlite_ops
from gateway.store.base import Actor

_TARGET = (
    "SELECT d.seq, d.id, d.filing_id, d.filing_seq, d.adapter, d.ordering_key, d.state, "
    "d.attempts, f.received_at FROM deliveries d JOIN filings f ON f.seq = d.filing_seq "
)


# --- acknowledgements -------------------------------------------------------------------


def fingerprint(ack: models.Ack) -> str:
    """Same ack content (wherever it came from, whenever) → same fingerprint."""
    body = ack.model_dump(mode="json", exclude={"received_at", "source"})
    return hashlib.sha256(audit.canonical(body).encode()).hexdigest()


def _correlate(conn: sqlite3.Connection, ack: models.Ack) -> tuple[Any, str | None, int | None]:
    """The delivery row an ack answers (or None), the filing id it belongs to, and the
    attempt it answers when its X12 control numbers say so."""
    row = None
    if ack.delivery_id:
        row = conn.execute(_TARGET + "WHERE d.id = ?", (ack.delivery_id,)).fetchone()
    elif ack.group_control is not None or ack.interchange_control is not None:
        column = "group_control" if ack.group_control is not None else "interchange_control"
        where, params = [f"{column} = ?"], [ack.group_control or ack.interchange_control]
        for name, value in (
            ("usage", ack.usage),
            ("sender", ack.x12_sender),
            ("receiver", ack.x12_receiver),
        ):
            if value is not None:
                where.append(f"{name} = ?")
                params.append(value)
        allocation = conn.execute(
            "SELECT delivery_id, attempt FROM x12_allocations WHERE "
            f"{' AND '.join(where)} ORDER BY seq DESC LIMIT 1",
            params,
        ).fetchone()
        if allocation is not None:
            row = conn.execute(_TARGET + "WHERE d.id = ?", (allocation[0],)).fetchone()
            return row, None if row is None else row[2], allocation[1]
    elif ack.reference is not None and ack.filing_type is not None:
        key = (ack.reference, ack.filing_type.value)
        if ack.unsolicited:
            found = conn.execute(
                "SELECT id FROM filings WHERE reference = ? AND filing_type = ? "
                "ORDER BY seq DESC LIMIT 1",
                key,
            ).fetchone()
            return None, None if found is None else found[0], None
        # the oldest delivery still waiting for its answer, else the latest one
        row = (
            conn.execute(
                _TARGET + "WHERE f.reference = ? AND f.filing_type = ? AND d.state = 'delivered' "
                "ORDER BY d.seq LIMIT 1",
                key,
            ).fetchone()
            or conn.execute(
                _TARGET + "WHERE f.reference = ? AND f.filing_type = ? ORDER BY d.seq DESC LIMIT 1",
                key,
            ).fetchone()
        )
    return row, None if row is None else row[2], None


def record_ack(
    conn: sqlite3.Connection,
    ack: models.Ack,
    decide: base.AckDecide,
    actor: Actor,
    now: datetime,
) -> models.AckRecord:
    fp = fingerprint(ack)
    existing = conn.execute(f"SELECT {_ACK_COLS} FROM acks WHERE fingerprint = ?", (fp,)).fetchone()
    if existing is not None:
        return _ack_record(existing, duplicate=True)
    now_us = rows.us(now)
    row, filing_id, answers_attempt = _correlate(conn, ack)
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
    trail = sqlite_audit.Audit(conn, now)
    conn.execute(
        "INSERT INTO acks (id, fingerprint, kind, outcome, unsolicited, codes, message, document, "
        "raw, source, received_at, matched_delivery_id, matched_filing_id, effect) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            ack_id,
            fp,
            ack.kind,
            None if ack.outcome is None else ack.outcome.value,
            int(ack.unsolicited),
            json.dumps(ack.codes),
            ack.message,
            ack.model_dump_json(exclude={"raw"}),
            ack.raw,
            ack.source,
            now_us,
            None if target is None else target.delivery_id,
            filing_id,
            decision.effect,
        ),
    )
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
        conn.execute(
            "UPDATE deliveries SET ack_conflict = 1, updated_at = ? WHERE id = ?",
            (now_us, target.delivery_id),
        )
        trail.add(
            "delivery.ack_conflict",
            actor=actor,
            filing_id=target.filing_id,
            delivery_id=target.delivery_id,
            details=logic.conflict_details(target, ack_id, ack, decision),
        )
    if target is not None and row is not None and decision.state is not None:
        seq, filing_seq, adapter, ordering_key = row[0], row[3], row[4], row[5]
        summary = {
            "ack_id": ack_id,
            "kind": ack.kind,
            "outcome": None if ack.outcome is None else ack.outcome.value,
            "codes": ack.codes,
            "message": ack.message,
            "received_at": rows.iso(now),
        }
        waiting = decision.state is models.DeliveryState.WAITING_RETRY
        conn.execute(
            "UPDATE deliveries SET state = ?, ack = ?, ack_overdue = 0, hold_until_ack = 0, "
            "ack_due_at = CASE WHEN ? THEN NULL ELSE ack_due_at END, "
            "available_at = COALESCE(?, available_at), last_error = COALESCE(?, last_error), "
            "updated_at = ? WHERE seq = ?",
            (
                decision.state.value,
                json.dumps(summary),
                int(waiting),
                rows.us_or_none(decision.at),
                decision.error,
                now_us,
                seq,
            ),
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
            touched |= sqlite_ops.block_successors(conn, trail, adapter, ordering_key, seq, now_us)
        for fs in touched:
            sqlite_ops.refresh_status(conn, fs, now_us)
    stored = conn.execute(f"SELECT {_ACK_COLS} FROM acks WHERE id = ?", (ack_id,)).fetchone()
    return _ack_record(stored, duplicate=False)


_ACK_COLS = "id, document, raw, matched_delivery_id, matched_filing_id, effect, seq"


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


def list_acks(
    conn: sqlite3.Connection, matched: bool | None, filing_id: str | None, limit: int
) -> list[models.AckRecord]:
    where, params = [], []
    if matched is not None:
        where.append("matched_filing_id IS NOT NULL" if matched else "matched_filing_id IS NULL")
    if filing_id is not None:
        where.append("matched_filing_id = ?")
        params.append(filing_id)
    sql = f"SELECT {_ACK_COLS} FROM acks"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY seq DESC LIMIT ?"
    return [_ack_record(r, duplicate=False) for r in conn.execute(sql, [*params, limit])]


# --- ack deadlines and operator actions ---------------------------------------------------


def flag_overdue(conn: sqlite3.Connection, now: datetime) -> list[tuple[str, str, str]]:
    now_us = rows.us(now)
    flagged = conn.execute(
        "UPDATE deliveries SET ack_overdue = 1, updated_at = ? WHERE state = 'delivered' "
        "AND ack_overdue = 0 AND ack_due_at IS NOT NULL AND ack_due_at <= ? "
        "RETURNING id, filing_id, adapter, ack_due_at",
        (now_us, now_us),
    ).fetchall()
    if flagged:
        trail = sqlite_audit.Audit(conn, now)
        for delivery_id, filing_id, adapter, due in flagged:
            trail.add(
                "delivery.ack_overdue",
                actor=base.SYSTEM,
                filing_id=filing_id,
                delivery_id=delivery_id,
                details={"adapter": adapter, "ack_due_at": rows.iso(rows.dt(due))},
            )
    return [(r[0], r[1], r[2]) for r in flagged]


def extend_ack_deadlines(conn: sqlite3.Connection, adapter: str, by_s: float, now: datetime) -> int:
    return conn.execute(
        "UPDATE deliveries SET ack_due_at = ack_due_at + ? WHERE adapter = ? "
        "AND state = 'delivered' AND ack_overdue = 0 AND ack_due_at IS NOT NULL",
        (round(by_s * 1_000_000), adapter),
    ).rowcount


def resend_filing(
    conn: sqlite3.Connection, filing_id: str, actor: Actor, now: datetime, reason: str
) -> base.Action:
    """An operator sends a sent filing again (``operator_resend``): same filing and
    delivery id, a new attempt; the ack wait and any conflict flag start afresh."""
    filing_seq = sqlite_actions.filing_seq_of(conn, filing_id)
    sqlite_actions.refuse_in_flight(conn, filing_seq, filing_id, lifecycle.Event.OPERATOR_RESEND)
    now_us = rows.us(now)
    changed = conn.execute(
        "UPDATE deliveries SET state = 'pending', available_at = ?, ack_due_at = NULL, "
        "ack_overdue = 0, hold_until_ack = 0, ack_conflict = 0, lease_owner = NULL, "
        f"updated_at = ? WHERE filing_seq = ? AND state IN {logic.RESEND_FROM_SQL} "
        "RETURNING id, adapter, ordering_key, ack_conflict",
        (now_us, now_us, filing_seq),
    ).fetchall()
    if not changed:
        raise errors.Refused(
            "conflict",
            f"filing {filing_id} has no sent delivery to resend",
            details={"id": filing_id},
        )
    trail = sqlite_audit.Audit(conn, now)
    touched = {filing_seq}
    for delivery_id, adapter, _, _ in changed:
        trail.add(
            "delivery.resent",
            actor=actor,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={"adapter": adapter, "reason": reason},
        )
    for adapter, ordering_key in {(r[1], r[2]) for r in changed}:
        touched |= sqlite_actions.reblock(conn, trail, actor, adapter, ordering_key, now_us)
    sqlite_ops.refresh_statuses(conn, sorted(touched), now_us)
    return base.Action(filing_id, [r[0] for r in changed])


def close_ack(
    conn: sqlite3.Connection, filing_id: str, actor: Actor, now: datetime, reason: str
) -> base.Action:
    """Stop waiting for an ack (a delivered delivery), or resolve a flagged conflict
    (``operator_close``: the state stays)."""
    filing_seq = sqlite_actions.filing_seq_of(conn, filing_id)
    now_us = rows.us(now)
    note = json.dumps({"closed_by": actor.name, "reason": reason, "closed_at": rows.iso(now)})
    changed = conn.execute(
        "UPDATE deliveries SET ack_due_at = NULL, ack_overdue = 0, hold_until_ack = 0, "
        "ack = CASE WHEN state = 'delivered' THEN ? ELSE ack END, ack_conflict = 0, "
        "updated_at = ? WHERE filing_seq = ? AND (state = 'delivered' OR (ack_conflict = 1 "
        f"AND state IN {logic.CLOSE_CONFLICT_SQL})) RETURNING id, adapter, state",
        (note, now_us, filing_seq),
    ).fetchall()
    if not changed:
        raise errors.Refused(
            "conflict",
            f"filing {filing_id} has no delivery waiting for an ack or in conflict",
            details={"id": filing_id},
        )
    trail = sqlite_audit.Audit(conn, now)
    for delivery_id, adapter, state in changed:
        trail.add(
            "delivery.ack_closed",
            actor=actor,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={"adapter": adapter, "reason": reason, "state": state},
        )
    return base.Action(filing_id, [r[0] for r in changed])


# --- X12 control numbers ------------------------------------------------------------------


def allocate_controls(
    conn: sqlite3.Connection,
    sender: str,
    receiver: str,
    usage: str,
    delivery_id: str,
    filing_id: str,
    attempt: int,
    now: datetime,
    token: int | None,
) -> base.Controls | None:
    """Next interchange and group numbers of a sender/receiver/usage; None if the lease is gone."""
    if token is not None and (
        conn.execute(
            "SELECT 1 FROM deliveries WHERE id = ? AND lease_token = ? AND state = 'in_flight'",
            (delivery_id, token),
        ).fetchone()
        is None
    ):
        return None
    top = x12.MAX_CONTROL
    interchange, group = conn.execute(
        "INSERT INTO x12_counters VALUES (?, ?, ?, 1, 1) "
        "ON CONFLICT (sender, receiver, usage) DO UPDATE SET "
        f"last_interchange = CASE WHEN last_interchange >= {top} THEN 1 "
        "ELSE last_interchange + 1 END, "
        f"last_group = CASE WHEN last_group >= {top} THEN 1 ELSE last_group + 1 END "
        "RETURNING last_interchange, last_group",
        (sender, receiver, usage),
    ).fetchone()
    conn.execute(
        "INSERT INTO x12_allocations (sender, receiver, usage, interchange_control, "
        "group_control, delivery_id, filing_id, attempt, allocated_at) "
        "VALUES (?,?,?,?,?,?,?,?,?)",
        (
            sender,
            receiver,
            usage,
            interchange,
            group,
            delivery_id,
            filing_id,
            attempt,
            rows.us(now),
        ),
    )
    return base.Controls(interchange=interchange, group=group)
