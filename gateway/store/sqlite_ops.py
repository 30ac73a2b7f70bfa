"""SQLite transaction bodies of the delivery life cycle: accept, claim, renew, finish
(retry, defer, dead; ``sqlite_acks`` adds sent), release, and the filing statuses they
derive. They run on the writer thread of ``sqlite.py`` inside the transaction its
``_write`` opened; audit rows go through ``sqlite_audit.Audit`` in that transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from gateway import errors, ids, models
from gateway.store import (
    base,
    logic,
    rows,
    sqlite_audit,
    sqlite_callbacks,
    sqlite_reads,
    sqlite_schema,
)
from gateway.store.base import Actor, Claim


def refresh_status(conn: sqlite3.Connection, filing_seq: int, now_us: int) -> None:
    refresh_statuses(conn, [filing_seq], now_us)


def refresh_statuses(
    conn: sqlite3.Connection, filing_seqs: Sequence[int], now_us: int | Mapping[int, int]
) -> None:
    """Derive each filing's status from its deliveries (two SELECTs for the whole set);
    a filing with a callback_url whose status changed gets its callback queued.
    ``now_us`` is the time of the change, or each filing's own (a batch of completions)."""
    seqs = list(dict.fromkeys(filing_seqs))
    if not seqs:
        return
    marks = ",".join("?" * len(seqs))
    states: dict[int, list[models.DeliveryState]] = {s: [] for s in seqs}
    for fs, state in conn.execute(
        f"SELECT filing_seq, state FROM deliveries WHERE filing_seq IN ({marks})", seqs
    ):
        states[fs].append(models.DeliveryState(state))
    before = {
        r[0]: (r[1], r[2])
        for r in conn.execute(
            f"SELECT seq, status, callback_url FROM filings WHERE seq IN ({marks})", seqs
        )
    }
    updates = []
    for fs in seqs:
        status = models.derive_status(states[fs]).value
        at = now_us if isinstance(now_us, int) else now_us[fs]
        updates.append((status, at, fs))
        old = before.get(fs)
        if old is not None and old[1] and old[0] != status:
            sqlite_callbacks.enqueue_callback(conn, fs, old[0], status, at)
    conn.executemany("UPDATE filings SET status = ?, updated_at = ? WHERE seq = ?", updates)


def accept(
    conn: sqlite3.Connection, items: list[base.NewFiling], actor: Actor, now: datetime
) -> list[base.AcceptResult]:
    now_us = rows.us(now)
    trail = sqlite_audit.Audit(conn, now)
    results: list[base.AcceptResult] = []
    for item in items:
        f = item.filing
        if f.idempotency_key is not None:
            row = conn.execute(
                "SELECT id, body_hash FROM filings WHERE idempotency_key = ?", (f.idempotency_key,)
            ).fetchone()
            if row is not None:
                if row[1] == f.body_hash:
                    results.append(base.AcceptResult(row[0], created=False))
                else:
                    results.append(
                        base.AcceptResult(
                            row[0],
                            created=False,
                            error=errors.IdempotencyKeyReused(
                                details={"idempotency_key": f.idempotency_key, "filing_id": row[0]}
                            ),
                        )
                    )
                continue
        results.append(_accept_new(conn, trail, item, actor, now_us))
    return results


def _accept_new(
    conn: sqlite3.Connection,
    trail: sqlite_audit.Audit,
    item: base.NewFiling,
    actor: Actor,
    now_us: int,
) -> base.AcceptResult:
    """Insert one new filing and its deliveries with the status they give it, and build
    the view the 202 answers with from what was written (no read back)."""
    f = item.filing
    states = [
        models.DeliveryState.BLOCKED
        if conn.execute(sqlite_schema.SQL_BLOCKED_BEHIND, (adapter, f.ordering_key)).fetchone()
        else models.DeliveryState.PENDING
        for adapter in item.adapters
    ]
    status = models.derive_status(states).value
    payload, is_json = rows.dump_payload(f.payload)
    filing_row: tuple[Any, ...] = (
        f.id,
        f.filing_type.value,
        f.environment.value,
        f.reference,
        f.filer_code,
        f.idempotency_key,
        f.body_hash,
        f.ordering_key,
        rows.us_or_none(f.due_by),
        f.content_type,
        payload,
        is_json,
        f.callback_url,
        json.dumps(f.metadata),
        f.source,
        rows.us(f.received_at),
        status,
        now_us,
        f.source_event_id,
    )
    filing_seq = conn.execute(sqlite_schema.SQL_INSERT_FILING, filing_row).lastrowid
    assert filing_seq is not None
    trail.add(
        "filing.accepted",
        actor=actor,
        filing_id=f.id,
        details=logic.accepted_details(f, item.adapters),
    )
    made: list[tuple[int, str, str, str]] = []
    for adapter, state in zip(item.adapters, states, strict=True):
        delivery_id = ids.new_id("dlv")
        conn.execute(
            sqlite_schema.SQL_INSERT_DELIVERY,
            (
                delivery_id,
                filing_seq,
                f.id,
                adapter,
                f.ordering_key,
                state.value,
                now_us,
                rows.us_or_none(f.due_by),
                now_us,
                now_us,
            ),
        )
        trail.add(
            f"delivery.{state.value}",
            actor=actor,
            filing_id=f.id,
            delivery_id=delivery_id,
            details={"adapter": adapter},
        )
        made.append((filing_seq, delivery_id, adapter, state.value))
    if f.callback_url and status != "pending":  # e.g. accepted behind a dead delivery
        sqlite_callbacks.enqueue_callback(conn, filing_seq, "pending", status, now_us)
    return base.AcceptResult(f.id, created=True, view=rows.accepted_view(f, made, now_us))


def claim(
    conn: sqlite3.Connection,
    owner: str,
    now: datetime,
    lease_s: float,
    limits: dict[str, int],
    probing: frozenset[str] = frozenset(),
) -> list[Claim]:
    """Take the heads of their ordering keys, earliest due first; a breaker probe
    (``probing``) takes a delivery that never failed a probe first."""
    now_us = rows.us(now)
    lease_until = rows.us(now + timedelta(seconds=lease_s))
    found: list[tuple[int, str, str, str, int, int, int]] = []
    for adapter, limit in limits.items():
        if limit <= 0:
            continue
        sql = sqlite_schema.SQL_CLAIM_CANDIDATES
        if adapter in probing:
            sql = sqlite_schema.SQL_CLAIM_PROBE
        found += [
            (seq, delivery_id, adapter, state, attempts, filing_seq, probes)
            for seq, delivery_id, state, attempts, filing_seq, probes in conn.execute(
                sql, (adapter, now_us, limit)
            ).fetchall()
        ]
    if not found:
        return []
    tokens: dict[int, int] = {}
    for i in range(0, len(found), 500):  # one UPDATE per 500 (SQLite's variable limit)
        chunk = [f[0] for f in found[i : i + 500]]
        sql = sqlite_schema.SQL_TAKE_MANY.format(marks=",".join("?" * len(chunk)))
        tokens.update(conn.execute(sql, (owner, lease_until, now_us, *chunk)).fetchall())
    trail = sqlite_audit.Audit(conn, now)
    filings = sqlite_reads.load_filings(conn, {f[5] for f in found})
    claims = []
    for seq, delivery_id, adapter, state, attempts, filing_seq, probes in found:
        filing = filings[filing_seq]
        details: dict[str, Any] = {"adapter": adapter, "attempt": attempts + 1, "owner": owner}
        if state == "in_flight":
            details["reclaimed_expired_lease"] = True
        trail.add(
            "delivery.in_flight",
            actor=base.SYSTEM,
            filing_id=filing.id,
            delivery_id=delivery_id,
            details=details,
        )
        claims.append(
            Claim(
                delivery_id=delivery_id,
                adapter=adapter,
                token=tokens[seq],
                attempts=attempts,
                filing=filing,
                probe_failures=probes,
            )
        )
    refresh_statuses(conn, [f[5] for f in found], now_us)
    return claims


def finish(
    conn: sqlite3.Connection,
    claim: Claim,
    now: datetime,
    state: models.DeliveryState,
    available_at: datetime,
    error: str | None,
    receipt: dict[str, Any] | None,
    spent: bool,
    event: str,
    details: dict[str, Any],
    ack: tuple[int | None, bool] | None = None,
    probe_failed: bool = False,
) -> bool:
    """Settle a claimed delivery if its lease token still holds (the fence). ``ack`` is
    (ack due at in µs, hold the ordering key until acknowledged) for a sent delivery;
    ``probe_failed`` counts a failed breaker probe."""
    touched = settle(
        conn, None, claim, now, state, available_at, error, receipt, spent, event, details, ack
    )
    if touched is None:
        return False
    if probe_failed:
        conn.execute(
            "UPDATE deliveries SET probe_failures = probe_failures + 1 WHERE id = ?",
            (claim.delivery_id,),
        )
    refresh_statuses(conn, sorted(touched), rows.us(now))
    return True


def settle(
    conn: sqlite3.Connection,
    trail: sqlite_audit.Audit | None,
    claim: Claim,
    now: datetime,
    state: models.DeliveryState,
    available_at: datetime,
    error: str | None,
    receipt: dict[str, Any] | None,
    spent: bool,
    event: str,
    details: dict[str, Any],
    ack: tuple[int | None, bool] | None = None,
) -> set[int] | None:
    """``finish`` without the status refresh: the filing seqs it touched, or None when
    the fence refused. ``trail`` is shared by a batch (each row keeps its own time)."""
    now_us = rows.us(now)
    head: tuple[Any, ...] = (
        state.value,
        1 if spent else 0,
        rows.us(available_at),
        error,
        None if receipt is None else json.dumps(receipt),
        now_us if state is models.DeliveryState.DELIVERED else None,
        now_us,
    )
    fence = (claim.delivery_id, claim.token)
    if ack is None:
        row = conn.execute(sqlite_schema.SQL_FINISH, head + fence).fetchone()
    else:
        row = conn.execute(
            sqlite_schema.SQL_FINISH_SENT, (*head, ack[0], int(ack[1]), *fence)
        ).fetchone()
    if row is None:
        return None
    seq, filing_seq, adapter, ordering_key, attempts = row
    if trail is None:
        trail = sqlite_audit.Audit(conn, now)
    else:
        trail.at = rows.iso(now)
    trail.add(
        event,
        actor=base.SYSTEM,
        filing_id=claim.filing.id,
        delivery_id=claim.delivery_id,
        details={"adapter": adapter, "attempts": attempts, **details},
    )
    touched = {filing_seq}
    if state is models.DeliveryState.DEAD:
        touched |= block_successors(conn, trail, adapter, ordering_key, seq, now_us)
    return touched


def block_successors(
    conn: sqlite3.Connection,
    trail: sqlite_audit.Audit,
    adapter: str,
    ordering_key: str,
    after_seq: int,
    now_us: int,
) -> set[int]:
    changed = conn.execute(
        "UPDATE deliveries SET state = 'blocked', updated_at = ? WHERE adapter = ? "
        f"AND ordering_key = ? AND seq > ? AND state IN {logic.BLOCK_FROM_SQL} "
        "RETURNING id, filing_id, filing_seq",
        (now_us, adapter, ordering_key, after_seq),
    ).fetchall()
    for delivery_id, filing_id, _ in changed:
        trail.add(
            "delivery.blocked",
            actor=base.SYSTEM,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={"adapter": adapter, "ordering_key": ordering_key},
        )
    return {r[2] for r in changed}


def release(conn: sqlite3.Connection, owner: str, now: datetime) -> int:
    now_us = rows.us(now)
    changed = conn.execute(
        f"UPDATE deliveries SET state = '{logic.RELEASED_TO}', "
        "lease_owner = NULL, lease_token = lease_token + 1, "
        "available_at = ?, updated_at = ? WHERE lease_owner = ? AND state = 'in_flight' "
        "RETURNING id, filing_id, filing_seq, adapter, state",
        (now_us, now_us, owner),
    ).fetchall()
    if changed:
        trail = sqlite_audit.Audit(conn, now)
        for delivery_id, filing_id, _, adapter, state in changed:
            trail.add(
                "delivery.released",
                actor=base.SYSTEM,
                filing_id=filing_id,
                delivery_id=delivery_id,
                details={"adapter": adapter, "state": state},
            )
        for fs in {r[2] for r in changed}:
            refresh_status(conn, fs, now_us)
    return len(changed)


def renew(conn: sqlite3.Connection, owner: str, tokens: dict[str, int], until: datetime) -> int:
    n = 0
    for delivery_id, token in tokens.items():
        n += conn.execute(
            "UPDATE deliveries SET available_at = ? WHERE id = ? AND lease_token = ? "
            "AND lease_owner = ? AND state = 'in_flight'",
            (rows.us(until), delivery_id, token, owner),
        ).rowcount
    return n


def next_due(conn: sqlite3.Connection) -> int | None:
    row = conn.execute(
        f"SELECT MIN(available_at) FROM deliveries WHERE state IN {sqlite_schema.CLAIMABLE_SQL}"
    ).fetchone()
    return None if row is None else row[0]
