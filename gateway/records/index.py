"""The search index: one SQLite file beside the segments, mapping what an auditor asks by
(reference, entry number, bill of lading, ISF transaction number, filer code, filing type,
environment, dates, state, ack code) to where the record lies (segment and position).

The index is derived data: every row can be rebuilt from the segments (``rebuild``), so it
is written without waiting for each commit to reach the disk (``synchronous=NORMAL`` in WAL
mode) and a segment's rows go in one transaction (``add``, idempotent by segment name).

Identifiers live in ``terms`` (field, normalized value, time, record), one row a value, so a
manifest is found by any of its bills; the other filters are columns of ``records``.
Results come newest first, paged by a keyset cursor over (received time, record number):
page 500 costs what page 1 does.

The calls block; async callers run them in a worker thread.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.records import crypto, errors, extract, segment, storage

SCHEMA_VERSION = 1
MAX_LIMIT = 500
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    sha256       TEXT NOT NULL,
    record_count INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS fields (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS records (
    rid         INTEGER PRIMARY KEY,
    filing_id   TEXT NOT NULL UNIQUE,
    segment_id  INTEGER NOT NULL REFERENCES segments (id),
    position    INTEGER NOT NULL,
    filing_type TEXT NOT NULL,
    environment TEXT NOT NULL,
    filer_code  TEXT NOT NULL,
    reference   TEXT NOT NULL,
    state       TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS records_received ON records (received_at, rid);
CREATE INDEX IF NOT EXISTS records_filer ON records (filer_code, received_at, rid);
CREATE INDEX IF NOT EXISTS records_filer_type
    ON records (filer_code, filing_type, received_at, rid);
CREATE INDEX IF NOT EXISTS records_type ON records (filing_type, received_at, rid);
CREATE INDEX IF NOT EXISTS records_state ON records (state, received_at, rid);
CREATE INDEX IF NOT EXISTS records_segment ON records (segment_id);
CREATE TABLE IF NOT EXISTS terms (
    field_id    INTEGER NOT NULL,
    value       TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    rid         INTEGER NOT NULL,
    PRIMARY KEY (field_id, value, received_at, rid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS terms_record ON terms (rid);
"""
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


def ack_codes(record: Mapping[str, Any]) -> list[str]:
    """The codes of the acks a record holds (``codes`` as a list or its JSON text)."""
    found: list[str] = []
    for ack in record.get("acks") or ():
        codes = ack.get("codes") if isinstance(ack, Mapping) else None
        if isinstance(codes, str):
            try:
                codes = json.loads(codes)
            except ValueError:
                codes = [codes]
        for code in codes if isinstance(codes, list) else ():
            if isinstance(code, str | int) and not isinstance(code, bool):
                value = extract.normalize(str(code))
                if value and value not in found:
                    found.append(value)
    return found


class Index:
    """The SQLite search index at ``path`` (created if missing)."""

    def __init__(
        self,
        path: str | Path,
        *,
        rules: Iterable[extract.FieldRule] = extract.DEFAULT_RULES,
    ) -> None:
        self.path = Path(path)
        self.rules = tuple(rules)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise errors.StorageError(
                f"{self.path}: not a records index ({exc}); delete it, it is rebuilt from "
                "the segments"
            ) from None
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            self._db.close()
            raise errors.StorageError(
                f"{self.path}: index schema {row[0]}, this gateway writes {SCHEMA_VERSION}; "
                "delete the file and rebuild it from the segments"
            )
        self._fields = dict(self._db.execute("SELECT name, id FROM fields").fetchall())

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _field_id(self, name: str) -> int:
        fid = self._fields.get(name)
        if fid is None:
            self._db.execute("INSERT OR IGNORE INTO fields (name) VALUES (?)", (name,))
            (fid,) = self._db.execute("SELECT id FROM fields WHERE name = ?", (name,)).fetchone()
            self._fields[name] = fid
        return int(fid)

    # --- writing ---------------------------------------------------------------------------

    def add(
        self,
        written: segment.Written,
        records: Sequence[Mapping[str, Any]],
    ) -> bool:
        """Index the records of one segment (in its order); False if it was indexed before."""
        if len(records) != len(written.entries):
            raise ValueError(
                f"{written.name}: {len(records)} records for {len(written.entries)} entries"
            )
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                cur = db.execute(
                    "INSERT OR IGNORE INTO segments (name, sha256, record_count, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (
                        written.name,
                        written.sha256,
                        len(records),
                        micros(written.header.created_at),
                    ),
                )
                if cur.rowcount == 0:
                    db.execute("ROLLBACK")
                    return False
                seg_id = cur.lastrowid
                rows: list[tuple[Any, ...]] = []
                terms: list[tuple[int, str, int, int]] = []
                (rid,) = db.execute("SELECT coalesce(max(rid), 0) FROM records").fetchone()
                for entry, record in zip(written.entries, records, strict=True):
                    rid += 1
                    filing = record["filing"]
                    if filing.get("id") != entry.id:
                        raise ValueError(
                            f"{written.name}: record {entry.position} is not {entry.id}"
                        )
                    received = micros(filing.get("received_at"), what="filing.received_at")
                    finished = filing.get("updated_at")
                    rows.append(
                        (
                            rid,
                            entry.id,
                            seg_id,
                            entry.position,
                            str(filing.get("filing_type", "")),
                            str(filing.get("environment", "")),
                            str(filing.get("filer_code", "")),
                            str(filing.get("reference", "")),
                            str(filing.get("status", "")),
                            received,
                            None if finished is None else micros(finished, what="updated_at"),
                        )
                    )
                    found = extract.extract(filing, self.rules)
                    if codes := ack_codes(record):
                        found[ACK_CODE] = codes
                    for name, values in found.items():
                        fid = self._field_id(name)
                        terms.extend((fid, v, received, rid) for v in values)
                db.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
                db.executemany("INSERT OR IGNORE INTO terms VALUES (?, ?, ?, ?)", terms)
            except BaseException:
                db.execute("ROLLBACK")
                self._fields = dict(db.execute("SELECT name, id FROM fields").fetchall())
                raise
            db.execute("COMMIT")
            return True

    def remove(self, name: str) -> int:
        """Forget segment ``name`` (a purge); how many records went."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT id FROM segments WHERE name = ?", (name,)).fetchone()
                if row is None:
                    db.execute("ROLLBACK")
                    return 0
                db.execute(
                    "DELETE FROM terms WHERE rid IN (SELECT rid FROM records WHERE segment_id = ?)",
                    row,
                )
                count = db.execute("DELETE FROM records WHERE segment_id = ?", row).rowcount
                db.execute("DELETE FROM segments WHERE id = ?", row)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return int(count)

    def segments(self) -> dict[str, str]:
        """{segment name: sha256} of every indexed segment."""
        with self._lock:
            return dict(self._db.execute("SELECT name, sha256 FROM segments").fetchall())

    # --- reading ---------------------------------------------------------------------------

    def locate(self, filing_id: str) -> Hit | None:
        """Where the record of ``filing_id`` lies, if it is archived."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_HIT} FROM records r JOIN segments s ON s.id = r.segment_id "
                "WHERE r.filing_id = ?",
                (filing_id,),
            ).fetchone()
        return None if row is None else _hit(row)

    def search(self, query: Query) -> Page:
        """One page of the filings matching ``query``, newest first."""
        if not 1 <= query.limit <= MAX_LIMIT:
            raise errors.BadQuery(f"between 1 and {MAX_LIMIT}", field="limit")
        with self._lock:
            # fields another process added since (a newly configured path) count at once
            self._fields = dict(self._db.execute("SELECT name, id FROM fields").fetchall())
            sql, params = self._compile(query)
            rows = self._db.execute(sql, params).fetchall()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        hits = [_hit(row[:-1]) for row in rows]
        cursor = encode_cursor(rows[-1][8], rows[-1][-1]) if more else None
        return Page(hits=hits, next_cursor=cursor)

    def plan(self, query: Query) -> list[str]:
        """SQLite's plan for ``query``, one line a step (``records search --explain``)."""
        with self._lock:
            self._fields = dict(self._db.execute("SELECT name, id FROM fields").fetchall())
            sql, params = self._compile(query)
            return [row[3] for row in self._db.execute(f"EXPLAIN QUERY PLAN {sql}", params)]

    def iter_all(self, query: Query) -> Iterator[Hit]:
        """Every match, page after page (exports)."""
        page = self.search(query)
        yield from page.hits
        while page.next_cursor is not None:
            page = self.search(_with_cursor(query, page.next_cursor))
            yield from page.hits

    def _lookups(
        self, query: Query
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
            fid = self._fields.get(name, -1)
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
            ids = [fid for name, fid in self._fields.items() if name != ACK_CODE] or [-1]
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

    def _compile(self, query: Query) -> tuple[str, list[Any]]:
        """The SELECT for ``query``: the first identifier filter (or the any-field lookup)
        drives through ``terms`` in time order; the rest are filters on the row."""
        drive, where, params = self._lookups(query)
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
            f"SELECT {_HIT}, r.rid FROM {source} JOIN segments s ON s.id = r.segment_id"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY {key}.received_at DESC, {key}.rid DESC LIMIT ?"
        )
        params.append(query.limit + 1)
        return sql, params


def catch_up(
    index: Index,
    store: storage.SegmentStorage,
    *,
    keyring: crypto.Keyring | None = None,
    expected: Mapping[str, str] | None = None,
) -> list[str]:
    """Index every segment of ``store`` the index lacks (after a crash between a segment's
    put and its ``add``, or into a fresh index file: a rebuild); the names added. Each is
    verified on the way (against ``expected`` {name: sha256} when given)."""
    have = index.segments()
    added = []
    for name in store.list():
        if name in have:
            continue
        seg = segment.open_segment(
            store, name, keyring=keyring, expected_sha256=(expected or {}).get(name)
        )
        written = segment.Written(name=name, sha256=seg.sha256, size=seg.size, header=seg.header)
        if index.add(written, list(seg)):
            added.append(name)
    return added


_HIT = (
    "r.filing_id, s.name, r.position, r.filing_type, r.environment, r.filer_code, "
    "r.reference, r.state, r.received_at, r.finished_at"
)


def _hit(row: Sequence[Any]) -> Hit:
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


def _with_cursor(query: Query, cursor: str) -> Query:
    return replace(query, cursor=cursor)
