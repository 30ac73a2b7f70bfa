"""The search index: one SQLite file beside the segments, mapping what an auditor asks by
(reference, entry number, bill of lading, ISF transaction number, filer code, filing type,
environment, dates, state, ack code) to where the record lies (segment and position).

The index is derived data: every row can be rebuilt from the segments (``catch_up`` into a
fresh file), so it is written without waiting for each commit to reach the disk
(``synchronous=NORMAL`` in WAL mode) and a segment's rows go in one transaction (``add``,
idempotent by segment name).

Identifiers live in ``terms`` (field, normalized value, time, record), one row a value, so a
manifest is found by any of its bills; the other filters are columns of ``records``.
Results come newest first, paged by a keyset cursor over (received time, record number):
page 500 costs what page 1 does.

The calls block; async callers run them in a worker thread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from gateway.records import crypto, errors, extract, segment, storage
from gateway.records import query as q

# the search's values, re-exported: callers import the index only
from gateway.records.query import ACK_CODE as ACK_CODE
from gateway.records.query import Hit as Hit
from gateway.records.query import Page as Page
from gateway.records.query import Query as Query
from gateway.records.query import micros as micros

SCHEMA_VERSION = 2
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
    filing_id   TEXT NOT NULL,
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
CREATE INDEX IF NOT EXISTS records_filing ON records (filing_id, rid);
CREATE TABLE IF NOT EXISTS terms (
    field_id    INTEGER NOT NULL,
    value       TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    rid         INTEGER NOT NULL,
    PRIMARY KEY (field_id, value, received_at, rid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS terms_record ON terms (rid);
-- the audit rows each segment holds (first and last seq, how many): ``audit verify`` reads
-- the chain's archived rows by it; a purged segment's range stays, marked (added in place:
-- an older index learns the ranges of the segments it had from ``catch_up``/``audit_range``)
CREATE TABLE IF NOT EXISTS audit_ranges (
    name       TEXT PRIMARY KEY,
    first_seq  INTEGER NOT NULL,
    last_seq   INTEGER NOT NULL,
    rows       INTEGER NOT NULL,
    purged     INTEGER NOT NULL DEFAULT 0
);
"""


def audit_range(records: Iterable[Mapping[str, Any]]) -> tuple[int, int, int] | None:
    """(first seq, last seq, rows) of the audit rows ``records`` hold; None: none."""
    seqs = [int(a["seq"]) for r in records for a in r.get("audit") or ()]
    return (min(seqs), max(seqs), len(seqs)) if seqs else None


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
                self._note_range(written.name, audit_range(records))
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
                db.execute("UPDATE audit_ranges SET purged = 1 WHERE name = ?", (name,))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return int(count)

    def _note_range(self, name: str, found: tuple[int, int, int] | None) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO audit_ranges VALUES (?, ?, ?, ?, 0)",
            (name, *(found or (0, -1, 0))),
        )

    def note_range(self, name: str, found: tuple[int, int, int] | None) -> None:
        """Remember the audit range of segment ``name`` (read from it: an older index)."""
        with self._lock:
            self._note_range(name, found)

    def audit_ranges(self) -> dict[str, tuple[int, int, int, bool]]:
        """{segment: (first seq, last seq, rows, purged)} of the segments whose audit
        rows the index knows (rows 0: the segment holds none)."""
        with self._lock:
            found = self._db.execute(
                "SELECT name, first_seq, last_seq, rows, purged FROM audit_ranges"
            ).fetchall()
        return {r[0]: (int(r[1]), int(r[2]), int(r[3]), bool(r[4])) for r in found}

    def segments(self) -> dict[str, str]:
        """{segment name: sha256} of every indexed segment."""
        with self._lock:
            return dict(self._db.execute("SELECT name, sha256 FROM segments").fetchall())

    # --- reading ---------------------------------------------------------------------------

    def locate(self, filing_id: str) -> Hit | None:
        """Where the record of ``filing_id`` lies, if it is archived (a filing restored and
        archived again is in two segments: the newest)."""
        found = self.locate_all(filing_id)
        return found[-1] if found else None

    def locate_all(self, filing_id: str) -> list[Hit]:
        """Every archived copy of ``filing_id``'s record, oldest first (each holds the
        audit rows of its own time live)."""
        with self._lock:
            found = self._db.execute(
                f"SELECT {q.HIT_COLUMNS} FROM records r JOIN segments s ON s.id = r.segment_id "
                "WHERE r.filing_id = ? ORDER BY r.rid",
                (filing_id,),
            ).fetchall()
        return [q.hit(row) for row in found]

    def search(self, query: Query) -> Page:
        """One page of the filings matching ``query``, newest first."""
        if not 1 <= query.limit <= q.MAX_LIMIT:
            raise errors.BadQuery(f"between 1 and {q.MAX_LIMIT}", field="limit")
        with self._lock:
            # fields another process added since (a newly configured path) count at once
            self._fields = dict(self._db.execute("SELECT name, id FROM fields").fetchall())
            sql, params = q.compile_query(query, self._fields)
            rows = self._db.execute(sql, params).fetchall()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        hits = [q.hit(row[:-1]) for row in rows]
        cursor = q.encode_cursor(rows[-1][8], rows[-1][-1]) if more else None
        after = [q.encode_cursor(row[8], row[-1]) for row in rows]
        return Page(hits=hits, next_cursor=cursor, after=after)

    def plan(self, query: Query) -> list[str]:
        """SQLite's plan for ``query``, one line a step (``records search --explain``)."""
        with self._lock:
            self._fields = dict(self._db.execute("SELECT name, id FROM fields").fetchall())
            sql, params = q.compile_query(query, self._fields)
            return [row[3] for row in self._db.execute(f"EXPLAIN QUERY PLAN {sql}", params)]

    def iter_all(self, query: Query) -> Iterator[Hit]:
        """Every match, page after page (exports)."""
        page = self.search(query)
        yield from page.hits
        while page.next_cursor is not None:
            page = self.search(replace(query, cursor=page.next_cursor))
            yield from page.hits


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
