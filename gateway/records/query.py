"""A records search as data, and the SELECT it becomes over the index's tables.

Identifier filters (``terms``) drive through the ``terms`` table in time order; column
filters walk their (column, time) index when nothing else drives. Times are microseconds
since the epoch in the index; cursors are opaque (received time, record number) pairs.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.records import errors, extract

MAX_LIMIT = 500
ACK_CODE = "ack_code"
#: the column filters, most selective first (environment has no index of its own)
_COLUMNS = ("filer_code", "filing_type", "state", "environment")


@dataclass(frozen=True, kw_only=True)
class Hit:
    """One archived filing found, and where its record lies."""

    filing_id: str
    segment: str
    position: int
    filing_type: str
    environment: str
    filer_code: str
    reference: str
    state: str
    received_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class Page:
    hits: list[Hit]
    #: pass back as ``Query.cursor`` for the next page; None on the last page
    next_cursor: str | None
    #: for each hit, the cursor of the page that starts just after it
    after: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Query:
    """A records search; every filter given must hold (AND)."""

    #: {field: value} over the identifier fields (reference, entry_number, bill_of_lading,
    #: isf_transaction_number, ack_code, any configured one); values are normalized
    terms: Mapping[str, str] = field(default_factory=dict)
    #: a value looked up in every identifier field at once (the dashboard's search box)
    identifier: str | None = None
    filing_type: str | None = None
    environment: str | None = None
    filer_code: str | None = None
    state: str | None = None
    #: only these filer codes / environments (a token's scope); None: all
    filer_codes: tuple[str, ...] | None = None
    environments: tuple[str, ...] | None = None
    #: received at or after
    received_from: datetime | None = None
    #: received before
    received_to: datetime | None = None
    limit: int = 50
    cursor: str | None = None


def micros(value: object, *, what: str = "time") -> int:
    """Microseconds since the epoch from the store's spellings: an int (SQLite), a datetime
    (asyncpg) or an ISO 8601 string (JSON)."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: not a time")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{what}: {value!r} is not an ISO 8601 time") from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{what}: a time needs its offset")
        delta = value - _EPOCH
        return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    raise ValueError(f"{what}: not a time")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def encode_cursor(received_at: int, rid: int) -> str:
    return base64.urlsafe_b64encode(f"{received_at}:{rid}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        at, rid = text.split(":")
        return int(at), int(rid)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise errors.BadQuery("not a cursor this index gave", field="cursor") from None


def _lookups(
    query: Query, fields: Mapping[str, int]
) -> tuple[tuple[str, str, list[Any]] | None, list[str], list[Any]]:
    """The identifier filters: the driving lookup (FROM clause, its condition, their
    parameters), and the rest as conditions on the row with their parameters."""
    where: list[str] = []
    params: list[Any] = []
    drive: tuple[str, str, list[Any]] | None = None
    for name, raw in query.terms.items():
        if not extract.FIELD_NAME.fullmatch(name):
            raise errors.BadQuery("not a search field", field=name)
        value = extract.normalize(raw)
        if not value:
            raise errors.BadQuery("empty", field=name)
        # a field no record has yet matches nothing (not an error: the field may be
        # configured but not archived yet)
        fid = fields.get(name, -1)
        if drive is None:
            drive = ("terms t", "t.field_id = ? AND t.value = ?", [fid, value])
        else:
            where.append(
                "EXISTS (SELECT 1 FROM terms x WHERE x.field_id = ? AND x.value = ? "
                "AND x.rid = r.rid)"
            )
            params += [fid, value]
    if query.identifier is not None:
        value = extract.normalize(query.identifier)
        if not value:
            raise errors.BadQuery("empty", field="identifier")
        ids = [fid for name, fid in fields.items() if name != ACK_CODE] or [-1]
        marks = ",".join("?" * len(ids))
        if drive is None:
            drive = (
                "(SELECT DISTINCT received_at, rid FROM terms "
                f"WHERE field_id IN ({marks}) AND value = ?) t",
                "",
                [*ids, value],
            )
        else:
            where.append(
                f"EXISTS (SELECT 1 FROM terms x WHERE x.field_id IN ({marks}) "
                "AND x.value = ? AND x.rid = r.rid)"
            )
            params += [*ids, value]
    return drive, where, params


def compile_query(query: Query, fields: Mapping[str, int]) -> tuple[str, list[Any]]:
    """The SELECT for ``query``: the first identifier filter (or the any-field lookup)
    drives through ``terms`` in time order; the rest are filters on the row."""
    drive, where, params = _lookups(query, fields)
    # the most selective column filter given walks its (column, time) index when no
    # identifier drives; the others are marked unindexable with a unary + so the planner
    # never walks the state index (few values, most rows alike) instead
    indexed: set[str] = set()
    if drive is None:
        given = [c for c in _COLUMNS if getattr(query, c) is not None]
        # filer code and filing type together walk (filer_code, filing_type, time)
        pair = {"filer_code", "filing_type"}
        indexed = pair if pair <= set(given) else set(given[:1])
    for column in _COLUMNS:
        value = getattr(query, column)
        if value is not None:
            where.append(f"{'' if column in indexed else '+'}r.{column} = ?")
            params.append(value)
    for column, values in (("filer_code", query.filer_codes), ("environment", query.environments)):
        if values is not None:
            where.append(f"+r.{column} IN ({','.join('?' * len(values)) or 'NULL'})")
            params += list(values)
    key = "r" if drive is None else "t"
    for bound, op, name in (
        (query.received_from, ">=", "received_from"),
        (query.received_to, "<", "received_to"),
    ):
        if bound is not None:
            try:
                at = micros(bound, what=name)
            except ValueError as exc:
                raise errors.BadQuery(str(exc), field=name) from None
            where.append(f"{key}.received_at {op} ?")
            params.append(at)
    if query.cursor is not None:
        at, rid = decode_cursor(query.cursor)
        where.append(f"({key}.received_at, {key}.rid) < (?, ?)")
        params += [at, rid]
    if drive is None:
        source = "records r"
    else:
        table, condition, drive_params = drive
        source = f"{table} JOIN records r ON r.rid = t.rid"
        if condition:
            where.insert(0, condition)
        params[0:0] = drive_params
    sql = (
        f"SELECT {HIT_COLUMNS}, r.rid FROM {source} JOIN segments s ON s.id = r.segment_id"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + f" ORDER BY {key}.received_at DESC, {key}.rid DESC LIMIT ?"
    )
    params.append(query.limit + 1)
    return sql, params


HIT_COLUMNS = (
    "r.filing_id, s.name, r.position, r.filing_type, r.environment, r.filer_code, "
    "r.reference, r.state, r.received_at, r.finished_at"
)


def hit(row: Sequence[Any]) -> Hit:
    return Hit(
        filing_id=row[0],
        segment=row[1],
        position=row[2],
        filing_type=row[3],
        environment=row[4],
        filer_code=row[5],
        reference=row[6],
        state=row[7],
        received_at=from_micros(row[8]),
        finished_at=None if row[9] is None else from_micros(row[9]),
    )
