"""The store's side of the records archive (issue 20), for both backends. The mover reads
finished filings with all their rows (``archive_batch``, one snapshot), writes the segment,
then ``archive_enter`` re-reads each filing's stamp under row locks: if any moved, nothing
changes (False); else in one transaction the rows go, audit rows too (the segment holds
them; ``audit verify`` reads them there), ``record_segments`` lists the segment and
``records.archived`` enters its hash. ``restore`` puts the rows back but the audit's."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway import errors, ids
from gateway.records import crypto
from gateway.store import rows, trail
from gateway.store.sansio import Body, Cx, Dialect, q, queries, sql
from gateway.values import Actor

#: a record's tables; every one but the audit goes back on restore
TABLES = ("filings", "deliveries", "acks", "callbacks", "x12_allocations", "audit")
#: a filing's stamp: (filings.updated_at, newest deliveries.updated_at)
Stamp = tuple[int, int | None]


@functools.cache
def columns(dialect: Dialect, table: str) -> tuple[str, ...]:
    """The columns ``archive_rows_<table>`` reads: the keys of the archived row dicts."""
    text = queries(dialect)[f"archive_rows_{table}"]
    return tuple(c.strip() for c in re.split(r"\sFROM\s", text[len("SELECT") :])[0].split(","))


def stamp_of(record: Mapping[str, Any]) -> Stamp:
    newest = [d["updated_at"] for d in record["deliveries"]]
    return (record["filing"]["updated_at"], max(newest, default=None))


def candidates(cx: Cx, finished_before: datetime, after_seq: int, limit: int) -> Body[list[Any]]:
    """(seq, id, type, environment, reference, filer, received µs, updated µs, newest
    delivery µs) of finished filings last changed before ``finished_before``, by seq."""
    found = yield q("all", "archive_candidates", rows.us(finished_before), after_seq, limit)
    return [tuple(r) for r in found]


def batch(cx: Cx, seqs: list[int]) -> Body[list[dict[str, Any]]]:
    """The records of filings ``seqs``: each filing row with its rows of every table."""
    recs: dict[int, dict[str, Any]] = {}
    for r in (yield q("all", "archive_rows_filings", seqs)):
        recs[r[0]] = {"filing": _row(cx, "filings", r), **{t: [] for t in TABLES[1:]}}
    own = {rec["filing"]["id"]: rec for rec in recs.values()}  # filing id: its record
    for r in (yield q("all", "archive_rows_deliveries", list(recs))) if recs else ():
        recs[r[2]]["deliveries"].append(_row(cx, "deliveries", r))
    dlv = {d["id"]: d for rec in recs.values() for d in rec["deliveries"]}
    for table, keys in (("acks", own), ("callbacks", own), ("audit", own), ("x12", dlv)):
        table = "x12_allocations" if table == "x12" else table
        for r in (yield q("all", f"archive_rows_{table}", list(keys))) if keys else ():
            row = _row(cx, table, r)
            own[row["matched_filing_id" if table == "acks" else "filing_id"]][table].append(row)
    return [recs[s] for s in sorted(recs)]


def _row(cx: Cx, table: str, r: Any) -> dict[str, Any]:
    """A row as a dict, its payload or receipt opened (the segment is sealed whole)."""
    return crypto.code_row(table, dict(zip(columns(cx.dialect, table), r, strict=True)))


def sealed_sample(cx: Cx, table: str, kids: list[str]) -> Body[tuple[str, str] | None]:
    """(a value of ``table``'s sealed column under a key none of ``kids`` names, its
    associated data), or None: the start-up's key check asks once a key in use."""
    col, aad = crypto.COLUMNS[table]
    skip = [crypto.text_prefix(k) for k in kids]
    where = "".join(f" AND substr({col}, 1, {len(p)}) <> ${i}" for i, p in enumerate(skip, 1))
    text = f"SELECT id, {'filing_id' if col == 'receipt' else 'id'}, {col} FROM {table} WHERE "
    row = yield sql("one", f"{text}substr({col}, 1, 15) = 'edigw-sealed:1:'{where} LIMIT 1", *skip)
    return None if row is None else (row[2], aad({"id": row[0], "filing_id": row[1]}))


def enter(
    cx: Cx, segment: Mapping[str, Any], stamps: Mapping[int, Stamp], actor: Actor, now: datetime
) -> Body[bool]:
    """Delete the filings' rows, enter ``segment``; False (no change) if a filing changed."""
    seqs = sorted(stamps)
    locked = {s: (f, u) for s, f, u in (yield q("all", "archive_lock_filings", seqs))}
    dlv = list((yield q("all", "archive_lock_deliveries", seqs)))
    newest = {s: u for s, _, u in sorted(dlv, key=lambda d: d[2])}  # each filing's last wins
    if {s: (v[1], newest.get(s)) for s, v in locked.items()} != dict(stamps):
        return False
    filing_ids, delivery_ids = [v[0] for v in locked.values()], [d[1] for d in dlv]
    yield q("run", "archive_delete_x12_allocations", delivery_ids)
    for table in ("acks", "callbacks"):
        yield q("run", f"archive_delete_{table}", filing_ids)
    yield q("run", "archive_delete_deliveries", seqs)
    yield q("run", "archive_delete_filings", seqs)
    info = (segment["name"], segment["sha256"], len(seqs), segment["first_id"], segment["last_id"])
    yield q("run", "archive_segment_insert", *info, rows.us(now))
    details = dict(zip(("segment", "sha256", "records", "first_id", "last_id"), info, strict=True))
    details["audit_rows"] = len(moved := list(segment.get("audit_seqs", [])))  # it holds these
    yield from trail.record(cx, now, actor, "records.archived", details)  # the chain lock, then
    yield sql("run", "INSERT INTO audit_prune_guard (id) VALUES (1)")  # the guard, as ``prune``
    yield q("run", "archive_delete_audit", moved)
    yield sql("run", "DELETE FROM audit_prune_guard")
    return True


def restore(
    cx: Cx, record: Mapping[str, Any], segment: str, reason: str, actor: Actor, now: datetime
) -> Body[None]:
    """Put an archived record's rows back, one transaction (its audit rows stay archived)."""
    filing_id = str(record["filing"]["id"])
    if (yield q("all", "archive_live_ids", [filing_id])):
        raise errors.Conflict(f"filing {filing_id} is live already", details={"id": filing_id})
    over = " OVERRIDING SYSTEM VALUE" if cx.dialect == "postgres" else ""
    for table in TABLES[:-1]:
        for row in [record["filing"]] if table == "filings" else record.get(table, []):
            row = crypto.code_row(table, dict(row), seal=True)
            cols = [c for c in columns(cx.dialect, table) if c in row]
            marks = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
            text = f"INSERT INTO {table} ({', '.join(cols)}){over} VALUES ({marks})"
            tail = "" if table == "filings" else " ON CONFLICT DO NOTHING"
            yield sql("run", text + tail, *(row[c] for c in cols))
    details = {"segment": segment, "reason": reason}
    yield from trail.record(cx, now, actor, "records.restored", details, filing_id=filing_id)


def place_hold(
    cx: Cx, kind: str, value: str, reason: str, actor: Actor, now: datetime
) -> Body[str]:
    hold_id = ids.new_id("hld")
    yield q("run", "hold_insert", hold_id, kind, value, reason, rows.us(now), actor.name)
    details = {"hold": hold_id, "kind": kind, "value": value, "reason": reason}
    yield from trail.record(cx, now, actor, "records.hold_placed", details)
    return hold_id


def release_hold(cx: Cx, hold_id: str, reason: str, actor: Actor, now: datetime) -> Body[None]:
    found = yield q("one", "hold_release", hold_id, rows.us(now), actor.name)
    if found is None:
        raise errors.NotFound(f"no active hold {hold_id}", details={"id": hold_id})
    details = {"hold": hold_id, "kind": found[0], "value": found[1], "reason": reason}
    yield from trail.record(cx, now, actor, "records.hold_released", details)


def holds(cx: Cx) -> Body[list[tuple[Any, ...]]]:
    """(id, kind, value, reason, placed µs, placed by, released µs, released by) of every hold."""
    return [tuple(r) for r in (yield q("all", "holds_all"))]


def segments(cx: Cx) -> Body[list[tuple[Any, ...]]]:
    """(name, sha256, records, first id, last id, archived µs, purged µs | None), by name."""
    return [tuple(r) for r in (yield q("all", "archive_segments"))]


def purged(cx: Cx, name: str, sha256: str, records: int, actor: Actor, now: datetime) -> Body[bool]:
    """Mark segment ``name`` purged, audited (``records.purged``); False if it was already."""
    if not (yield q("run", "archive_segment_purged", name, rows.us(now))):
        return False
    details = {"segment": name, "sha256": sha256, "records": records}
    yield from trail.record(cx, now, actor, "records.purged", details)
    return True


def last_prune(cx: Cx) -> Body[str | None]:
    """The details (JSON) of the newest ``audit.pruned`` row: where archived rows end too."""
    return (yield q("val", "archive_pruned_to"))  # type: ignore[no-any-return]


def live_seqs(cx: Cx, filing_ids: list[str]) -> Body[dict[str, int]]:
    """{id: seq} of those of ``filing_ids`` that are live."""
    return {str(r[0]): int(r[1]) for r in (yield q("all", "archive_live_ids", filing_ids))}


def live_references(cx: Cx, normalized: str) -> Body[list[str]]:
    """The live references' spellings that normalize to ``normalized`` (``extract``'s)."""
    return [str(r[0]) for r in (yield q("all", "archive_live_references", normalized))]
