"""Accept: new filings and their deliveries, with their audit rows, in one transaction,
written once for both backends (both drivers run ``accept_many`` for a batch of
concurrent callers, ``coalesce``; on SQLite the batch is one operation of the writer's
group commit).

How it stays right with several PostgreSQL processes:

* the ordering-key locks are taken first, for the whole batch (by ``accept_filings``,
  before its first row): a key's deliveries then get their ``seq`` in commit order, so
  no claimer can see a later filing of a key committed while an earlier one is not yet;
* filings go in with ``ON CONFLICT (idempotency_key) DO NOTHING`` and the taken keys are
  read back after, so concurrent duplicates become one filing;
* set-based: one INSERT of all the filings, one of all their deliveries (PostgreSQL:
  one statement over a jsonb array of rows; SQLite: one statement per row, back to back).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway import errors, ids, models, values
from gateway.audit import events
from gateway.rules import fair
from gateway.store import rows
from gateway.store.sansio import Body, Cx, UniqueViolation, q
from gateway.store.status import refresh_statuses
from gateway.store.trail import Trail
from gateway.values import Actor


@dataclass(frozen=True, slots=True)
class AcceptCall:
    """One caller's ``accept``: its filings, who asked, and when."""

    items: list[values.NewFiling]
    actor: Actor
    now: datetime


@dataclass(frozen=True, slots=True)
class Made:
    """A filing this transaction inserted, and its deliveries (filing seq, id, adapter,
    state): ``results`` builds its view after COMMIT, off SQLite's writer thread."""

    filing: models.Filing
    deliveries: list[tuple[int, str, str, str]]
    now_us: int


def results(found: list[list[values.AcceptResult | Made]]) -> list[list[values.AcceptResult]]:
    """``accept_many``'s results, each new filing with its view (the 202's body)."""
    return [
        [
            r
            if isinstance(r, values.AcceptResult)
            else values.AcceptResult(
                r.filing.id, created=True, view=rows.accepted_view(r.filing, r.deliveries, r.now_us)
            )
            for r in call
        ]
        for call in found
    ]


def accept_many(cx: Cx, calls: list[AcceptCall]) -> Body[list[list[values.AcceptResult | Made]]]:
    """Several callers' accepts in one transaction; each gets the results of its items.

    The same as running them one after the other: items are inserted in call order
    (a repeated idempotency key inside the batch finds the earlier item's row), and
    each row carries its own caller's actor and time. A filing goes in as ``pending``
    and is seen by no one else yet: only one that derives another status (accepted
    behind a dead delivery) needs the status refresh, and the callback it queues.
    """
    entries = [(call, item) for call in calls for item in call.items]
    filings = [_filing_row(c, i.filing) for c, i in entries]
    try:  # PostgreSQL: the statement takes the ordering-key locks first (SQLite: one writer)
        found = yield q("table_each", "accept_filings", filings)
    except UniqueViolation as exc:  # e.g. a filing id taken: this batch's own failure
        raise errors.StoreError(f"store integrity error: {exc}") from exc
    inserted: dict[str, int] = {r[0]: r[1] for r in found}
    earlier = yield from _earlier(cx, [i.filing for _, i in entries if i.filing.id not in inserted])
    fresh = [(c, i, inserted[i.filing.id]) for c, i in entries if i.filing.id in inserted]
    pairs = sorted({(a, i.filing.filer_code) for _, i, _ in fresh for a in i.adapters})
    tags = fair.Tagger((yield q("each", "fair_state", pairs)))  # issue 22: fair delivery
    wanted = [
        (
            ids.new_id("dlv"),
            fs,
            item.filing.id,
            a,
            item.filing.ordering_key,
            rows.us(call.now),
            rows.us_or_none(item.filing.due_by),
            tags.tag(a, item.filing.filer_code),
        )
        for call, item, fs in fresh
        for a in item.adapters
    ]
    made = {r[0]: r[1] for r in (yield q("table_each", "accept_deliveries", wanted))}
    states = iter((w[0], made[w[0]]) for w in wanted)
    trail = Trail(calls[0].now, cx.redactor)
    made_now: dict[str, Made] = {}
    stamps: dict[int, int] = {}
    for call, item, filing_seq in fresh:
        f = item.filing
        mine = [next(states) for _ in item.adapters]
        now_us = rows.us(call.now)
        at = None if call.now is calls[0].now else call.now  # the trail's time: no iso again
        made_now[f.id] = Made(
            f,
            [(filing_seq, d, a, st) for a, (d, st) in zip(item.adapters, mine, strict=True)],
            now_us,
        )
        if any(st != "pending" for _, st in mine):  # derives another status than pending
            stamps[filing_seq] = now_us
        trail.add(
            "filing.accepted",
            actor=call.actor,
            filing_id=f.id,
            now=at,
            details=events.accepted_details(f, item.adapters),
        )
        for adapter, (delivery_id, state) in zip(item.adapters, mine, strict=True):
            trail.add(
                f"delivery.{state}",
                actor=call.actor,
                filing_id=f.id,
                delivery_id=delivery_id,
                now=at,
                details={"adapter": adapter},
            )
    yield from refresh_statuses(cx, stamps)
    yield q("rows", "fair_finish", tags.finishes())  # just before the chain lock (rules.fair)
    yield from trail.flush(notify="accept")
    return [
        [made_now.get(item.filing.id) or earlier[item.filing.id] for item in call.items]
        for call in calls
    ]


def _filing_row(call: AcceptCall, f: models.Filing) -> tuple[Any, ...]:
    payload, is_json = rows.dump_payload(f.payload, f.id)
    return (
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


def _earlier(cx: Cx, filings: list[models.Filing]) -> Body[dict[str, values.AcceptResult]]:
    """The filings whose idempotency key was taken (maybe committed just now, maybe by an
    earlier item of this batch): the filing that holds it, or the key-reused error when
    the bodies differ. One SELECT for all of them."""
    if not filings:
        return {}
    keys = sorted({f.idempotency_key for f in filings if f.idempotency_key is not None})
    found = yield q("all", "accept_taken_keys", keys)
    held = {r[0]: (r[1], r[2]) for r in found}
    out: dict[str, values.AcceptResult] = {}
    for f in filings:
        if f.idempotency_key not in held:  # pragma: no cover - ON CONFLICT saw a row now gone
            raise errors.StoreError(f"idempotency key {f.idempotency_key!r} vanished")
        filing_id, body_hash = held[f.idempotency_key]
        out[f.id] = values.AcceptResult(
            filing_id,
            created=False,
            error=None
            if body_hash == f.body_hash
            else errors.IdempotencyKeyReused(
                details={"idempotency_key": f.idempotency_key, "filing_id": filing_id}
            ),
        )
    return out
