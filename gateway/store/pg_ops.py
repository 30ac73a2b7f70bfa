"""Transaction bodies of the PostgreSQL store: accept, dispatch and operator actions.

Same semantics as ``sqlite.py``'s bodies; each runs inside one transaction. Audit rows
are collected while a body runs and appended at its end by ``pg_audit.Trail.flush``,
under the audit advisory lock, so the lock is held only for the last few statements
before commit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from gateway import errors, ids, models
from gateway.audit import redact
from gateway.rules import lifecycle
from gateway.store import base, logic, pg_audit, pg_callbacks, pg_sql, rows
from gateway.store.base import Actor, Claim

Conn = asyncpg.Connection


async def refresh_status(conn: Conn, filing_seqs: set[int], now_us: int) -> None:
    """Re-derive the filings' statuses; queue a callback where one changed (schema v5)."""
    await refresh_statuses(conn, dict.fromkeys(filing_seqs, now_us))


async def refresh_statuses(conn: Conn, stamps: dict[int, int]) -> None:
    """``refresh_status`` with each filing's own time (filing seq → µs): a coalesced
    transaction of several callers.

    The filing rows are locked first (in seq order), so the delivery states read next
    include every change committed by a concurrent refresher of the same filing, and
    ``previous_status`` is the status the last one wrote. Set-based: three statements
    whatever the number of filings.
    """
    if not stamps:
        return
    seqs = sorted(stamps)
    before = {r[0]: (r[1], r[2]) for r in await conn.fetch(pg_sql.LOCK_FILINGS, seqs)}
    found = await conn.fetch(pg_sql.FILING_STATES, seqs)
    # in seq order, the order flag_at_risk locks filings in too: fewer deadlocks
    changes = [
        (models.derive_status([models.DeliveryState(s) for s in states]).value, stamps[fs], fs)
        for fs, states in sorted(found)
    ]
    if not changes:
        return
    await conn.execute(
        pg_sql.SET_STATUSES,
        [c[0] for c in changes],
        [c[1] for c in changes],
        [c[2] for c in changes],
    )
    for status, at_us, fs in changes:
        previous, callback_url = before.get(fs, (status, None))
        if callback_url and previous != status:
            await pg_callbacks.enqueue_callback(conn, fs, previous, status, at_us)


async def lock_keys(conn: Conn, keys: set[str]) -> None:
    """Take the ordering-key locks, in one fixed order so two transactions cannot deadlock."""
    if keys:
        await conn.execute(pg_sql.LOCK_KEYS, sorted(keys))


# --- accept -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AcceptCall:
    """One caller's ``accept``: its filings, who asked, and when."""

    items: list[base.NewFiling]
    actor: Actor
    now: datetime


async def accept(
    conn: Conn,
    items: list[base.NewFiling],
    actor: Actor,
    now: datetime,
    redactor: redact.Redactor,
) -> tuple[list[base.AcceptResult], bool]:
    """Insert new filings and their deliveries; returns the results and "anything new?"."""
    results, new = await accept_many(conn, [AcceptCall(items, actor, now)], redactor)
    return results[0], new


async def accept_many(
    conn: Conn, calls: list[AcceptCall], redactor: redact.Redactor
) -> tuple[list[list[base.AcceptResult]], bool]:
    """Several callers' accepts in one transaction; each gets the results of its items.

    The same as running them one after the other: items are inserted in call order
    (a repeated idempotency key inside the batch finds the earlier item's row), and
    each row carries its own caller's actor and time. Set-based: one INSERT of all the
    filings, one of all their deliveries.

    The ordering-key locks are taken first, for the whole batch: a key's deliveries
    then get their ``seq`` in commit order, so no claimer can see a later filing of a
    key committed while an earlier one is still invisible to it.
    """
    entries = [(call, item) for call in calls for item in call.items]
    await lock_keys(conn, {item.filing.ordering_key for _, item in entries})
    inserted = await _insert_filings(conn, entries)
    stamps: dict[int, int] = {}
    fresh: list[tuple[AcceptCall, base.NewFiling, int]] = []
    out: dict[int, list[base.AcceptResult]] = {id(call): [] for call in calls}
    for call, item in entries:
        f = item.filing
        filing_seq = inserted.get(f.id)
        if filing_seq is None:  # the idempotency key exists (maybe committed just now)
            out[id(call)].append(await _earlier(conn, f))
            continue
        fresh.append((call, item, filing_seq))
        stamps[filing_seq] = rows.us(call.now)
        out[id(call)].append(base.AcceptResult(f.id, created=True))  # view set below
    states = iter(
        await _insert_deliveries(
            conn, [(call, item.filing, fs, a) for call, item, fs in fresh for a in item.adapters]
        )
    )
    trail = pg_audit.Trail(calls[0].now, redactor)
    settled: set[int] = set()
    views: dict[str, models.FilingView] = {}
    for call, item, filing_seq in fresh:
        f = item.filing
        made = [next(states) for _ in item.adapters]
        views[f.id] = rows.accepted_view(
            f,
            [(filing_seq, d, a, st) for a, (d, st) in zip(item.adapters, made, strict=True)],
            rows.us(call.now),
        )
        # inserted as 'pending' and seen by no one else yet: only another status needs
        # the refresh (and its callback)
        if models.derive_status([models.DeliveryState(st) for _, st in made]).value == "pending":
            settled.add(filing_seq)
        trail.add(
            "filing.accepted",
            actor=call.actor,
            filing_id=f.id,
            now=call.now,
            details=logic.accepted_details(f, item.adapters),
        )
        for adapter, (delivery_id, state) in zip(item.adapters, made, strict=True):
            trail.add(
                f"delivery.{state}",
                actor=call.actor,
                filing_id=f.id,
                delivery_id=delivery_id,
                now=call.now,
                details={"adapter": adapter},
            )
    await refresh_statuses(conn, {fs: at for fs, at in stamps.items() if fs not in settled})
    await trail.flush(conn, notify="accept")
    results = [
        [replace(r, view=views[r.filing_id]) if r.created else r for r in out[id(call)]]
        for call in calls
    ]
    return results, bool(fresh)


async def _insert_filings(
    conn: Conn, entries: list[tuple[AcceptCall, base.NewFiling]]
) -> dict[str, int]:
    """One INSERT of every filing, in order; returns id → seq of those inserted (the
    others' idempotency key was taken, by an earlier row or an earlier item)."""
    if not entries:
        return {}
    cols: list[list[Any]] = [[] for _ in range(18)]
    for call, item in entries:
        f = item.filing
        payload, is_json = rows.dump_payload(f.payload)
        row = (
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
            rows.us(call.now),
            f.source_event_id,
        )
        for col, value in zip(cols, row, strict=True):
            col.append(value)
    return {r[0]: r[1] for r in await conn.fetch(pg_sql.INSERT_FILINGS, *cols)}


async def _insert_deliveries(
    conn: Conn, wanted: list[tuple[AcceptCall, models.Filing, int, str]]
) -> list[tuple[str, str]]:
    """One INSERT of every new delivery, in order; returns (id, state) in that order.

    A delivery is ``blocked`` when its key already has a dead, rejected or blocked
    delivery for its adapter. Rows inserted by this same statement are not seen by
    that check, and need not be: they are pending or blocked by an older row.
    """
    if not wanted:
        return []
    ids_ = [ids.new_id("dlv") for _ in wanted]
    found = await conn.fetch(
        pg_sql.INSERT_DELIVERIES,
        ids_,
        [fs for _, _, fs, _ in wanted],
        [f.id for _, f, _, _ in wanted],
        [a for _, _, _, a in wanted],
        [f.ordering_key for _, f, _, _ in wanted],
        [rows.us(call.now) for call, _, _, _ in wanted],
        [rows.us_or_none(f.due_by) for _, f, _, _ in wanted],
    )
    states = {r[0]: r[1] for r in found}
    return [(d, states[d]) for d in ids_]


async def _earlier(conn: Conn, f: models.Filing) -> base.AcceptResult:
    row = await conn.fetchrow(pg_sql.FILING_BY_KEY, f.idempotency_key)
    if row is None:  # pragma: no cover - ON CONFLICT saw a row that is now gone
        raise errors.StoreError(f"idempotency key {f.idempotency_key!r} vanished")
    if row[1] == f.body_hash:
        return base.AcceptResult(row[0], created=False)
    return base.AcceptResult(
        row[0],
        created=False,
        error=errors.IdempotencyKeyReused(
            details={"idempotency_key": f.idempotency_key, "filing_id": row[0]}
        ),
    )


# --- dispatch ---------------------------------------------------------------------------


async def claim(
    conn: Conn,
    owner: str,
    now: datetime,
    lease_s: float,
    limits: dict[str, int],
    redactor: redact.Redactor,
    probing: frozenset[str] = frozenset(),
) -> list[Claim]:
    """Take the heads of their ordering keys, earliest due first; a breaker probe
    (``probing``) takes a delivery that never failed a probe first."""
    now_us = rows.us(now)
    lease_until = rows.us(now + timedelta(seconds=lease_s))
    taken: list[Any] = []
    for adapter, limit in limits.items():
        if limit > 0:
            sql = pg_sql.CLAIM_PROBE if adapter in probing else pg_sql.CLAIM
            taken += await conn.fetch(sql, adapter, now_us, limit, owner, lease_until)
    if not taken:
        return []
    taken.sort(key=lambda r: (r[8], r[7]))  # claim order: due_by (none last), then seq
    filings = {r[4]: rows.filing(r[10:]) for r in taken}  # the filing's columns follow
    trail = pg_audit.Trail(now, redactor)
    claims = []
    for delivery_id, adapter, token, attempts, filing_seq, filing_id, was, *rest in taken:
        details: dict[str, Any] = {"adapter": adapter, "attempt": attempts + 1, "owner": owner}
        if was == "in_flight":
            details["reclaimed_expired_lease"] = True
        trail.add(
            "delivery.in_flight",
            actor=base.SYSTEM,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details=details,
        )
        claims.append(
            Claim(
                delivery_id=delivery_id,
                adapter=adapter,
                token=token,
                attempts=attempts,
                filing=filings[filing_seq],
                probe_failures=rest[2],
            )
        )
    await refresh_status(conn, {r[4] for r in taken}, now_us)
    await trail.flush(conn)
    return claims


async def finish(
    conn: Conn,
    claim: Claim,
    now: datetime,
    state: models.DeliveryState,
    available_at: datetime,
    error: str | None,
    receipt: dict[str, Any] | None,
    spent: bool,
    event: str,
    details: dict[str, Any],
    redactor: redact.Redactor,
    probe_failed: bool = False,
) -> bool:
    now_us = rows.us(now)
    if state is models.DeliveryState.DEAD:  # blocking successors changes the key's rows
        await lock_keys(conn, {claim.filing.ordering_key})
    row = await conn.fetchrow(
        pg_sql.FINISH,
        state.value,
        1 if spent else 0,
        rows.us(available_at),
        error,
        None if receipt is None else json.dumps(receipt),
        now_us if state is models.DeliveryState.DELIVERED else None,
        now_us,
        claim.delivery_id,
        claim.token,
    )
    if row is None:
        return False
    seq, filing_seq, adapter, ordering_key, attempts = row
    if probe_failed:
        await conn.execute(
            "UPDATE deliveries SET probe_failures = probe_failures + 1 WHERE seq = $1", seq
        )
    trail = pg_audit.Trail(now, redactor)
    trail.add(
        event,
        actor=base.SYSTEM,
        filing_id=claim.filing.id,
        delivery_id=claim.delivery_id,
        details={"adapter": adapter, "attempts": attempts, **details},
    )
    touched = {filing_seq}
    if state is models.DeliveryState.DEAD:
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
    await refresh_status(conn, touched, now_us)
    await trail.flush(conn)
    return True


async def release(conn: Conn, owner: str, now: datetime, redactor: redact.Redactor) -> int:
    now_us = rows.us(now)
    changed = await conn.fetch(pg_sql.RELEASE, now_us, owner)
    if not changed:
        return 0
    trail = pg_audit.Trail(now, redactor)
    for delivery_id, filing_id, _, adapter, state in changed:
        trail.add(
            "delivery.released",
            actor=base.SYSTEM,
            filing_id=filing_id,
            delivery_id=delivery_id,
            details={"adapter": adapter, "state": state},
        )
    await refresh_status(conn, {r[2] for r in changed}, now_us)
    await trail.flush(conn)
    await conn.execute("SELECT pg_notify($1, 'release')", pg_sql.CHANNEL)
    return len(changed)


# --- operator actions -------------------------------------------------------------------


async def reblock(
    conn: Conn, trail: pg_audit.Trail, actor: Actor, adapter: str, ordering_key: str, now_us: int
) -> set[int]:
    """Recompute ``blocked`` for one ordering key after an operator action."""
    touched: set[int] = set()
    blocked_by_predecessor = False
    for seq, delivery_id, filing_id, filing_seq, state in await conn.fetch(
        pg_sql.KEY_ROWS, adapter, ordering_key
    ):
        if state in ("dead", "rejected"):
            blocked_by_predecessor = True
            continue
        new = None
        if blocked_by_predecessor and state in ("pending", "waiting_retry", "deferred"):
            new = "blocked"
        elif not blocked_by_predecessor and state == "blocked":
            new = "pending"
        if new is not None:
            await conn.execute(pg_sql.SET_STATE, new, now_us, seq)
            trail.add(
                f"delivery.{'blocked' if new == 'blocked' else 'unblocked'}",
                actor=actor,
                filing_id=filing_id,
                delivery_id=delivery_id,
                details={"adapter": adapter},
            )
            touched.add(filing_seq)
    return touched


async def _filing_seq(conn: Conn, filing_id: str) -> tuple[int, str]:
    row = await conn.fetchrow("SELECT seq, ordering_key FROM filings WHERE id = $1", filing_id)
    if row is None:
        raise errors.NotFound(f"no filing {filing_id}", details={"id": filing_id})
    return int(row[0]), str(row[1])


async def refuse_in_flight(
    conn: Conn, filing_seq: int, filing_id: str, event: lifecycle.Event
) -> None:
    """A send in progress stops an operator action on its filing whole (409)."""
    found = await conn.fetch(pg_sql.FILING_DELIVERIES, filing_seq)
    logic.refuse_in_flight(filing_id, event, [(r[0], r[1], rows.dt(r[2])) for r in found])
