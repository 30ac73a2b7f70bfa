"""Transaction bodies written once, run by either database driver.

Why generators: a store operation's logic (what to read, what to decide, what to write,
which audit rows to chain) is the same on both backends; only *how a statement runs*
differs (``sqlite3`` on the writer thread, synchronously; ``asyncpg`` on a pooled
connection, awaited). So a body is a plain generator that **yields requests** and gets
each result sent back::

    def reject_event(cx: Cx, event: RejectedEvent) -> Body[bool]:
        seq = yield val("rejected_insert", event.id, ...)
        if seq is None:
            return False
        ...

``run_sync`` drives a body on a ``sqlite3`` connection inside the SQLite driver's group
commit (no event loop, no thread hop per statement: the body runs where the connection
lives); ``run_async`` drives the same body on an ``asyncpg`` connection. We weighed the
alternatives: async bodies would make SQLite hop threads per statement (its writer
thread is what makes group commit work), and generated sync code would be a second copy
to keep in step. A generator costs one ``send`` per statement.

A request names a query (``sql/<dialect>/*.sql``, ``-- name: …`` blocks, so a reader
compares the dialects query by query) or carries SQL text written once for both, with
PostgreSQL's ``$1`` placeholders (rewritten to SQLite's ``?1`` and cached). What truly
differs per dialect and is not a query — advisory locks, NOTIFY, ``FOR UPDATE SKIP
LOCKED``, ``= ANY(array)`` — is a request (``Lock``, ``LockKeys``) or a fragment of ``Cx``.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from importlib import resources
from typing import Any, Concatenate, Generic, Literal, ParamSpec, TypeAlias, TypeVar, overload

from gateway.audit import redact
from gateway.encoding import jsonio
from gateway.store import fragments

T = TypeVar("T")
P = ParamSpec("P")

Dialect = Literal["sqlite", "postgres"]

#: the advisory-lock namespace of ordering keys (the two-int form, so they never collide
#: with anyone else's); the audit chain's lock is ``trail.LOCK_AUDIT``
LOCK_ORDER_NS = 0x6564_6778

#: the PostgreSQL channel new work (a filing, an operator retry, released leases) is announced on
CHANNEL = "edigw_new_work"

#: what a request returns: "all" rows, "one" row or None, "val" first column of the first
#: row or None, "run" the number of rows changed, "rows" (one statement per row, or
#: PostgreSQL's ``unnest`` over column arrays) the number of rows written, "each" (the
#: same, for a statement with RETURNING) every row the statements return, "table" ("rows";
#: PostgreSQL: one jsonb array of row arrays, far cheaper for asyncpg to send than arrays)
#: and "table_each" (the same with RETURNING: "each")
Kind = Literal["all", "one", "val", "run", "rows", "each", "table", "table_each"]


@dataclass(slots=True)  # not frozen: its __init__ costs half as much, once per statement
class Query:
    """A statement for the driver: a named query, or SQL text valid on both dialects."""

    kind: Kind
    name: str | None
    text: str | None
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Lock:
    """Serialize with every other transaction holding the same key until commit
    (PostgreSQL advisory locks; SQLite has one writer, so nothing to do). ``notify``:
    also announce new work once the transaction commits (PostgreSQL's NOTIFY, in the
    same statement as the lock, which saves a round trip; nobody LISTENs to SQLite)."""

    key: tuple[int, int]
    notify: str | None = None


@dataclass(frozen=True, slots=True)
class LockKeys:
    """Serialize with every transaction that inserts, blocks or unblocks deliveries of
    the same ordering keys (PostgreSQL: one advisory lock per key, taken in one fixed
    order so two transactions cannot deadlock; SQLite: nothing to do)."""

    names: tuple[str, ...]


Request: TypeAlias = Query | Lock | LockKeys
#: a transaction body: yields requests, receives their results, returns its value
Body: TypeAlias = Generator[Request, Any, T]


class UniqueViolation(Exception):
    """A unique constraint refused a row (either backend's error, thrown into the body)."""


def q(kind: Kind, name: str, *args: Any) -> Query:
    """A named query of the running dialect."""
    return Query(kind, name, None, args)


def sql(kind: Kind, text: str, *args: Any) -> Query:
    """SQL text that both dialects accept, with ``$1``-style placeholders."""
    return Query(kind, None, text, args)


class Where:
    """The filters of a statement built at run time (a list with optional filters), with
    its ``$n`` parameters: ``str(where)`` is `` WHERE a AND b`` (empty without filters)."""

    def __init__(self, *conditions: str) -> None:
        self.conditions = list(conditions)
        self.params: list[Any] = []

    def arg(self, value: Any) -> str:
        """A parameter: its placeholder."""
        self.params.append(value)
        return f"${len(self.params)}"

    def add(self, condition: str) -> None:
        self.conditions.append(condition)

    def eq(self, column: str, value: Any) -> None:
        """``column = value``, unless value is None (no filter)."""
        if value is not None:
            self.add(f"{column} = {self.arg(value)}")

    def __str__(self) -> str:
        return " WHERE " + " AND ".join(self.conditions) if self.conditions else ""


@dataclass(frozen=True, slots=True)
class Cx:
    """What a body may know of where it runs: the dialect, its fragments, the redactor."""

    dialect: Dialect
    redactor: redact.Redactor

    @property
    def for_update(self) -> str:
        return fragments.BY_DIALECT[self.dialect]["for_update"]

    def any(self, param: str) -> str:
        """``col {cx.any('$1')}``: membership in a list parameter (a Python list)."""
        return fragments.MEMBER[self.dialect].format(param)


# --- named queries -----------------------------------------------------------------------

_NAME = re.compile(r"^--\s*name:\s*([a-z0-9_]+)\s*$", re.M)


@functools.cache
def queries(dialect: Dialect) -> dict[str, str]:
    """Every ``-- name: x`` block of ``sql/<dialect>/*.sql`` and of ``sql/common/*.sql``
    (statements both dialects accept), each ``{fragment}`` filled (``fragments``)."""
    found: dict[str, str] = {}
    words = fragments.of(dialect)
    for folder_name in (dialect, "common"):
        folder = resources.files("gateway.store").joinpath("sql", folder_name)
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".sql"):
                continue
            parts = _NAME.split(entry.read_text())
            for name, text in zip(parts[1::2], parts[2::2], strict=True):
                if name in found:
                    raise ValueError(f"query {name!r} is defined twice in sql/{dialect}")
                found[name] = text.strip().rstrip(";").format_map(words)
    return found


def text_of(dialect: Dialect, query: Query) -> str:
    if query.name is None:
        assert query.text is not None
        return query.text if dialect == "postgres" else to_sqlite(query.text)
    try:
        return ready(dialect)[query.name]
    except KeyError:
        raise KeyError(f"no query {query.name!r} in sql/{dialect}") from None


_DOLLAR = re.compile(r"\$(\d+)")


@functools.cache
def ready(dialect: Dialect) -> dict[str, str]:
    """The named queries as the driver runs them (SQLite's with ``?1`` placeholders)."""
    named = queries(dialect)
    return named if dialect == "postgres" else {n: to_sqlite(t) for n, t in named.items()}


@functools.lru_cache(maxsize=1024)
def to_sqlite(text: str) -> str:
    """``$1`` → ``?1`` (SQLite's numbered parameters bind the same argument tuple)."""
    return _DOLLAR.sub(r"?\1", text)


# --- SQLite: run a body on the writer thread --------------------------------------------


def _sqlite_exec(conn: sqlite3.Connection, query: Query) -> Any:
    text = text_of("sqlite", query)
    kind = query.kind
    if kind == "rows" or kind == "table":
        return conn.executemany(text, query.args[0]).rowcount
    if kind == "each" or kind == "table_each":
        return [r for row in query.args[0] for r in conn.execute(text, row).fetchall()]
    # a list parameter (``= ANY``'s array on PostgreSQL) is JSON for ``json_each``
    args = [json.dumps(a) if isinstance(a, list | tuple) else a for a in query.args]
    cur = conn.execute(text, args)
    if kind == "all":
        return cur.fetchall()
    if kind == "one":
        return cur.fetchone()
    if kind == "val":
        row = cur.fetchone()
        return None if row is None else row[0]
    return cur.rowcount


def run_sync(conn: sqlite3.Connection, body: Body[T]) -> T:
    """Drive ``body`` on a SQLite connection, inside the caller's transaction."""
    try:
        request = next(body)
        while True:
            try:
                # one writer: a Lock is held already, and nobody LISTENs
                result = _sqlite_exec(conn, request) if isinstance(request, Query) else None
            except sqlite3.IntegrityError as exc:
                if "UNIQUE" not in str(exc):
                    raise
                request = body.throw(UniqueViolation(str(exc)))
                continue
            request = body.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


# --- PostgreSQL: run a body on an asyncpg connection ------------------------------------


async def run_async(conn: Any, body: Body[T]) -> T:
    """Drive ``body`` on an asyncpg connection, inside the caller's transaction."""
    import asyncpg

    try:
        request = next(body)
        while True:
            try:
                result = await _pg_exec(conn, request)
            except asyncpg.exceptions.UniqueViolationError as exc:
                request = body.throw(UniqueViolation(str(exc)))
                continue
            request = body.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def _pg_exec(conn: Any, request: Request) -> Any:
    if not isinstance(request, Query):
        return await _pg_lock(conn, request)
    text = text_of("postgres", request)
    if request.kind == "all":
        return await conn.fetch(text, *request.args)
    if request.kind == "one":
        return await conn.fetchrow(text, *request.args)
    if request.kind == "val":
        return await conn.fetchval(text, *request.args)
    if request.kind == "table":  # the query unpacks $1 (jsonb_array_elements)
        return rowcount(await conn.execute(text, jsonio.dumps(request.args[0])))
    if request.kind == "table_each":
        return await conn.fetch(text, jsonio.dumps(request.args[0])) if request.args[0] else []
    if request.kind in ("rows", "each"):
        rows = list(request.args[0])
        if not rows:
            return 0 if request.kind == "rows" else []
        columns = [list(col) for col in zip(*rows, strict=True)]
        if request.kind == "each":
            return await conn.fetch(text, *columns)
        return rowcount(await conn.execute(text, *columns))
    return rowcount(await conn.execute(text, *request.args))


async def _pg_lock(conn: Any, request: Lock | LockKeys) -> None:
    if isinstance(request, Lock):
        if request.notify is None:
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *request.key)
        else:
            text = "SELECT pg_advisory_xact_lock($1, $2), pg_notify($3, $4)"
            await conn.execute(text, *request.key, CHANNEL, request.notify)
    elif request.names:
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1, k) FROM (SELECT DISTINCT hashtext(x) AS k "
            "FROM unnest($2::text[]) AS x ORDER BY 1) AS keys",
            LOCK_ORDER_NS,
            sorted(request.names),
        )


def rowcount(status: str) -> int:
    """``UPDATE 3`` / ``INSERT 0 3`` → 3."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class Driven:
    """What the store's feature classes need from a driver: run a body in a write
    transaction (``_tx``) or on a reader (``_rx``), with the driver's retries, error
    translation and group commit. ``cx`` is handed to the body as its first argument."""

    async def _tx(self, fn: Callable[..., Body[T]], *args: Any) -> T:
        raise NotImplementedError  # pragma: no cover - a driver provides it

    async def _rx(self, fn: Callable[..., Body[T]], *args: Any) -> T:
        raise NotImplementedError  # pragma: no cover - a driver provides it

    async def _rx_snapshot(self, fn: Callable[..., Body[T]], *args: Any) -> T:
        """As ``_rx``, every statement of the body reading one snapshot of the database."""
        raise NotImplementedError  # pragma: no cover - a driver provides it


class _Method(Generic[P, T]):
    """A store method that runs one body and nothing else: its parameters are the body's
    after ``cx`` (so the body's signature is the method's), ``run`` the driver's runner."""

    def __init__(self, body: Callable[Concatenate[Cx, P], Body[T]], run: str) -> None:
        self.body = body
        self.run = run
        self.__doc__ = body.__doc__

    @overload
    def __get__(self, store: None, owner: type) -> _Method[P, T]: ...
    @overload
    def __get__(
        self, store: Driven, owner: type | None = None
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, store: Driven | None, owner: type | None = None) -> Any:
        if store is None:
            return self
        run, body = getattr(store, self.run), self.body

        async def method(*args: P.args, **kwargs: P.kwargs) -> T:
            result: T = await run(functools.partial(body, **kwargs) if kwargs else body, *args)
            return result

        return method


def write(body: Callable[Concatenate[Cx, P], Body[T]]) -> _Method[P, T]:
    """``method = write(body)``: the body in a write transaction (``_tx``)."""
    return _Method(body, "_tx")


def read(body: Callable[Concatenate[Cx, P], Body[T]]) -> _Method[P, T]:
    """``method = read(body)``: the body on a reader (``_rx``)."""
    return _Method(body, "_rx")


def snapshot(body: Callable[Concatenate[Cx, P], Body[T]]) -> _Method[P, T]:
    """``method = snapshot(body)``: the body on a reader, in one snapshot (``_rx_snapshot``)."""
    return _Method(body, "_rx_snapshot")
