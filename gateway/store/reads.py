"""Reads of filings and queue statistics, written once for both backends (issue 7).

A filing is read with its deliveries in two statements (the filings, then the deliveries
of all of them), whatever the number of filings: ``get_filings`` serves a batch of
``get_filing`` calls (PostgreSQL coalesces them: every accepted filing is read back for
its 202, so these come in crowds), ``list_filings`` a page.

``queue_stats``: counts by (adapter, state) walk the covering index ``deliveries_state``;
the oldest waiting delivery reads only claimable rows (the partial index
``deliveries_due``); at-risk reads only unsettled filings (``filings_status``); ack
conflicts read the partial index ``deliveries_conflict``, whose predicate each dialect
writes its own way (``ack_conflict = 1`` on SQLite's INTEGER, ``ack_conflict`` on
PostgreSQL's BOOLEAN), so the query and the filter match it. The caller caches the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway import models
from gateway.store import rows, values
from gateway.store.sansio import Body, Cx, Driven, q, sql

F_COLS = (
    "f.seq, f.id, f.filing_type, f.environment, f.reference, f.filer_code, f.idempotency_key, "
    "f.body_hash, f.ordering_key, f.due_by, f.content_type, f.payload, f.payload_is_json, "
    "f.callback_url, f.metadata, f.source, f.received_at, f.status, f.at_risk_at, "
    "f.source_event_id"
)
D_COLS = (
    "d.seq, d.id, d.filing_id, d.adapter, d.state, d.attempts, d.available_at, d.last_error, "
    "d.receipt, d.created_at, d.updated_at, d.delivered_at, d.filing_seq, "
    "d.ack_due_at, d.ack_overdue, d.ack, d.ack_conflict"
)

#: delivery states a claim may take (exactly the partial indexes' predicate)
CLAIMABLE = "('pending','waiting_retry','deferred','in_flight')"
#: filing statuses that no longer change on their own
SETTLED = "('delivered','acknowledged','cancelled','dead','rejected')"
#: filing statuses still under way (at risk counts only these)
UNSETTLED = "('pending','in_progress','retrying','deferred','blocked')"


def flag_set(cx: Cx, column: str) -> str:
    """A flag column that is set: SQLite stores 0/1 INTEGERs, PostgreSQL BOOLEANs; each
    spelling matches its dialect's partial index on the flag."""
    return column if cx.dialect == "postgres" else f"{column} = 1"


def deliveries_of(cx: Cx, filing_seqs: Sequence[int]) -> Body[dict[int, list[models.Delivery]]]:
    """The deliveries of the filings, each filing's in order, in one statement."""
    out: dict[int, list[models.Delivery]] = {s: [] for s in filing_seqs}
    if not filing_seqs:
        return out
    arg: int | list[int]
    if len(filing_seqs) == 1:  # one filing (get_filing): no list to unpack
        test, arg = "= $1", filing_seqs[0]
    else:
        test, arg = cx.any("$1"), list(filing_seqs)
    found = yield sql(
        "all", f"SELECT {D_COLS} FROM deliveries d WHERE d.filing_seq {test} ORDER BY d.seq", arg
    )
    for r in found:
        out[r[12]].append(rows.delivery(r))
    return out


def get_filings(cx: Cx, filing_ids: Sequence[str]) -> Body[list[models.FilingView | None]]:
    """Several filings (a coalesced batch of ``get_filing`` calls) in two statements."""
    if len(filing_ids) == 1:  # the common case: the unique index, no list to unpack
        found = yield sql("all", f"SELECT {F_COLS} FROM filings f WHERE f.id = $1", filing_ids[0])
    else:
        found = yield sql(
            "all",
            f"SELECT {F_COLS} FROM filings f WHERE f.id {cx.any('$1')}",
            sorted(set(filing_ids)),
        )
    by_id = {r[1]: r for r in found}
    deliveries = yield from deliveries_of(cx, sorted(r[0] for r in by_id.values()))
    return [
        None if (r := by_id.get(i)) is None else rows.filing_view(r, deliveries[r[0]])
        for i in filing_ids
    ]


def get_filing(cx: Cx, filing_id: str) -> Body[models.FilingView | None]:
    return (yield from get_filings(cx, [filing_id]))[0]


def list_filings(
    cx: Cx, flt: values.ListFilter, limit: int, cursor: str | None
) -> Body[models.Page]:
    where: list[str] = []
    params: list[Any] = []

    def arg(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    if cursor is not None:
        where.append(f"f.seq < {arg(rows.decode_cursor(cursor))}")
    for column, value in (
        ("f.status", flt.status),
        ("f.filing_type", flt.filing_type),
        ("f.environment", flt.environment),
        ("f.reference", flt.reference),
    ):
        if value is not None:
            where.append(f"{column} = {arg(str(value))}")
    if flt.since is not None:
        where.append(f"f.received_at >= {arg(rows.us(flt.since))}")
    if flt.until is not None:
        where.append(f"f.received_at < {arg(rows.us(flt.until))}")
    if flt.at_risk is not None:
        risky = f"(f.at_risk_at IS NOT NULL AND f.status NOT IN {SETTLED})"
        where.append(risky if flt.at_risk else f"NOT {risky}")
    if flt.ack_conflict is not None:
        flagged = (
            "EXISTS (SELECT 1 FROM deliveries c WHERE c.filing_seq = f.seq "
            f"AND {flag_set(cx, 'c.ack_conflict')})"
        )
        where.append(flagged if flt.ack_conflict else f"NOT {flagged}")
    if flt.state is not None or flt.adapter is not None or flt.ack_overdue is not None:
        sub = ["d.filing_seq = f.seq"]
        if flt.ack_overdue is not None:
            sub.append(f"d.ack_overdue = {arg(flt.ack_overdue)}")  # a bool: 0/1 on SQLite
        if flt.state is not None:
            sub.append(f"d.state = {arg(flt.state.value)}")
        if flt.adapter is not None:
            sub.append(f"d.adapter = {arg(flt.adapter)}")
        where.append(f"EXISTS (SELECT 1 FROM deliveries d WHERE {' AND '.join(sub)})")
    text = f"SELECT {F_COLS} FROM filings f"
    if where:
        text += " WHERE " + " AND ".join(where)
    text += f" ORDER BY f.seq DESC LIMIT {arg(limit + 1)}"
    found = list((yield sql("all", text, *params)))
    more = len(found) > limit
    found = found[:limit]
    deliveries = yield from deliveries_of(cx, [r[0] for r in found])
    items = [rows.filing_view(r, deliveries[r[0]]) for r in found]
    next_cursor = rows.encode_cursor(found[-1][0]) if more and found else None
    return models.Page(items=items, next_cursor=next_cursor)


def counts(cx: Cx) -> Body[dict[str, dict[str, int]]]:
    out: dict[str, dict[str, int]] = {}
    for adapter, state, n in (
        yield sql("all", "SELECT adapter, state, COUNT(*) FROM deliveries GROUP BY adapter, state")
    ):
        out.setdefault(adapter, {})[state] = n
    return out


def queue_stats(cx: Cx) -> Body[values.QueueStats]:
    """Four index-only reads (see the module's docstring)."""
    by_adapter: dict[str, dict[str, int]] = {}
    for state, adapter, n in (
        yield sql("all", "SELECT state, adapter, COUNT(*) FROM deliveries GROUP BY state, adapter")
    ):
        by_adapter.setdefault(adapter, {})[state] = n
    oldest = {
        adapter: rows.dt(first)
        for adapter, first in (
            yield sql(
                "all",
                "SELECT adapter, MIN(created_at) FROM deliveries "
                f"WHERE state IN {CLAIMABLE} GROUP BY adapter",
            )
        )
    }
    at_risk = yield sql(
        "val",
        f"SELECT COUNT(*) FROM filings WHERE status IN {UNSETTLED} AND at_risk_at IS NOT NULL",
    )
    conflicts = yield q("val", "deliveries_in_conflict")
    return values.QueueStats(
        counts=by_adapter,
        oldest_waiting=oldest,
        at_risk=int(at_risk),
        ack_conflicts=int(conflicts),
    )


class ReadsStore(Driven):
    """The filing reads and queue statistics of ``Store``."""

    async def get_filing(self, filing_id: str) -> models.FilingView | None:
        return await self._rx(get_filing, filing_id)

    async def list_filings(
        self, flt: values.ListFilter, *, limit: int, cursor: str | None
    ) -> models.Page:
        return await self._rx(list_filings, flt, limit, cursor)

    async def counts(self) -> dict[str, dict[str, int]]:
        return await self._rx(counts)

    async def queue_stats(self) -> values.QueueStats:
        return await self._rx(queue_stats)
