"""Reads of filings and queue statistics, written once for both backends (issue 7).

A filing is read with its deliveries in two statements (the filings, then the deliveries
of all of them), whatever the number of filings: ``get_filings`` serves a batch of
``get_filing`` calls (PostgreSQL coalesces them: every accepted filing is read back for
its 202, so these come in crowds), ``list_filings`` a page.

``queue_stats`` is four index-only reads (each named query says which index it walks; the
ack conflicts' partial index is written per dialect: SQLite's 0/1 INTEGER, PostgreSQL's
BOOLEAN, and the ``list_filings`` filter matches it). The caller caches the result.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway import models, values
from gateway.store import rows
from gateway.store.fragments import COMMON, FILING_COLS
from gateway.store.sansio import Body, Cx, Where, q, sql


def deliveries_of(cx: Cx, filing_seqs: Sequence[int]) -> Body[dict[int, list[models.Delivery]]]:
    """The deliveries of the filings, each filing's in order, in one statement."""
    out: dict[int, list[models.Delivery]] = {s: [] for s in filing_seqs}
    if not filing_seqs:
        return out
    if len(filing_seqs) == 1:  # one filing (get_filing): no list to unpack
        found = yield q("all", "deliveries_of_filing", filing_seqs[0])
    else:
        found = yield q("all", "deliveries_of_filings", list(filing_seqs))
    for r in found:
        out[r[12]].append(rows.delivery(r))
    return out


def get_filings(cx: Cx, filing_ids: Sequence[str]) -> Body[list[models.FilingView | None]]:
    """Several filings (a coalesced batch of ``get_filing`` calls) in two statements."""
    if len(filing_ids) == 1:  # the common case: the unique index, no list to unpack
        found = yield q("all", "filing_by_id", filing_ids[0])
    else:
        found = yield q("all", "filings_by_ids", sorted(set(filing_ids)))
    by_id = {r[1]: r for r in found}
    deliveries = yield from deliveries_of(cx, sorted(r[0] for r in by_id.values()))
    return [
        None if (r := by_id.get(i)) is None else rows.filing_view(r, deliveries[r[0]])
        for i in filing_ids
    ]


def get_filing(cx: Cx, filing_id: str) -> Body[models.FilingView | None]:
    return (yield from get_filings(cx, [filing_id]))[0]


def list_filings(
    cx: Cx, flt: values.ListFilter, *, limit: int, cursor: str | None
) -> Body[models.Page]:
    w = Where()
    if cursor is not None:
        w.add(f"f.seq < {w.arg(values.decode_cursor(cursor))}")
    for column, value in (
        ("f.status", flt.status),
        ("f.filing_type", flt.filing_type),
        ("f.environment", flt.environment),
        ("f.reference", flt.reference),
    ):
        w.eq(column, None if value is None else str(value))
    for column, only in (("f.filer_code", flt.filer_codes), ("f.environment", flt.environments)):
        if only is not None:
            w.add(f"{column} {cx.any(w.arg(list(only)))}")
    if flt.since is not None:
        w.add(f"f.received_at >= {w.arg(rows.us(flt.since))}")
    if flt.until is not None:
        w.add(f"f.received_at < {w.arg(rows.us(flt.until))}")
    if flt.at_risk is not None:
        risky = f"(f.at_risk_at IS NOT NULL AND f.status NOT IN {COMMON['settled']})"
        w.add(risky if flt.at_risk else f"NOT {risky}")
    if flt.ack_conflict is not None:
        # a set flag, spelled as the dialect's partial index deliveries_conflict spells it
        is_set = "c.ack_conflict" if cx.dialect == "postgres" else "c.ack_conflict = 1"
        flagged = f"EXISTS (SELECT 1 FROM deliveries c WHERE c.filing_seq = f.seq AND {is_set})"
        w.add(flagged if flt.ack_conflict else f"NOT {flagged}")
    if flt.state is not None or flt.adapter is not None or flt.ack_overdue is not None:
        sub = Where("d.filing_seq = f.seq")
        sub.params = w.params  # one numbering
        sub.eq("d.ack_overdue", flt.ack_overdue)  # a bool: 0/1 on SQLite
        sub.eq("d.state", None if flt.state is None else flt.state.value)
        sub.eq("d.adapter", flt.adapter)
        w.add(f"EXISTS (SELECT 1 FROM deliveries d{sub})")
    text = f"SELECT {FILING_COLS} FROM filings f{w} ORDER BY f.seq DESC LIMIT {w.arg(limit + 1)}"
    found = list((yield sql("all", text, *w.params)))
    more = len(found) > limit
    found = found[:limit]
    deliveries = yield from deliveries_of(cx, [r[0] for r in found])
    items = [rows.filing_view(r, deliveries[r[0]]) for r in found]
    next_cursor = values.encode_cursor(found[-1][0]) if more and found else None
    return models.Page(items=items, next_cursor=next_cursor)


def counts(cx: Cx) -> Body[dict[str, dict[str, int]]]:
    """Deliveries by adapter and state."""
    out: dict[str, dict[str, int]] = {}
    for state, adapter, n in (yield q("all", "stats_by_state")):
        out.setdefault(adapter, {})[state] = n
    return out


def queue_stats(cx: Cx) -> Body[values.QueueStats]:
    """Four index-only reads (see the module's docstring)."""
    by_adapter = yield from counts(cx)
    oldest = {a: rows.dt(first) for a, first in (yield q("all", "stats_oldest_waiting"))}
    at_risk = yield q("val", "stats_at_risk")
    conflicts = yield q("val", "deliveries_in_conflict")
    return values.QueueStats(
        counts=by_adapter,
        oldest_waiting=oldest,
        at_risk=int(at_risk),
        ack_conflicts=int(conflicts),
    )


def open_filings(cx: Cx) -> Body[dict[str, int]]:
    """Filings accepted and not yet settled, by filer code (the quotas' ``max_pending``):
    one pass over the unsettled rows of ``filings_status``, whatever the number of filers."""
    return {str(code): int(n) for code, n in (yield q("all", "open_filings"))}


def filing_by_key(cx: Cx, key: str) -> Body[str | None]:
    """The id of the filing holding an idempotency key, if one does (a replay's)."""
    found = yield q("all", "accept_taken_keys", [key])
    return str(found[0][1]) if found else None
