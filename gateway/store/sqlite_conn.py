"""The SQLite writer's group commit (``run_group``), below ``sqlite.SqliteStore`` (whose
docstring says why); its connections, each on a thread of its own: ``gateway.sqlite_wal``."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any

from gateway import sqlite_wal
from gateway.store import coalesce

#: ``?synchronous=`` values of a store URL; FULL (the default) fsyncs the WAL on every commit
SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA")


def retryable(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


#: most write operations one group-commit transaction holds
GROUP_MAX = 512

#: a queued write: the function, its arguments, and the future its caller awaits
Op = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


def _settle_all(settled: list[tuple[asyncio.Future[Any], coalesce.Outcome]]) -> None:
    for fut, outcome in settled:
        coalesce.settle(fut, outcome)


def run_group(
    conn: sqlite3.Connection | None, batch: list[Op], wal: sqlite_wal.WriteSide | None = None
) -> None:
    """One transaction for a batch of operations, each in its own SAVEPOINT (but a lone
    one, whose failure is the transaction's), holding the writer lock of ``wal``.

    Nobody hears of an outcome before COMMIT; when BEGIN or COMMIT fails every
    operation of the batch gets that error (the callers retry what is retryable).
    """
    outcomes: list[coalesce.Outcome] = []
    try:
        assert conn is not None, "store is not open"
        if wal is not None:
            wal.begin()
        try:
            conn.execute("BEGIN IMMEDIATE")
            if len(batch) == 1:  # no SAVEPOINT (two statements fewer); its failure: below
                fn, args, _, _ = batch[0]
                outcomes.append((True, fn(conn, *args)))
            else:
                for fn, args, _, _ in batch:
                    conn.execute("SAVEPOINT op")
                    try:
                        value = fn(conn, *args)
                    except Exception as exc:  # this operation's failure: undo it alone
                        conn.execute("ROLLBACK TO op")
                        conn.execute("RELEASE op")
                        outcomes.append((False, exc))
                    else:
                        conn.execute("RELEASE op")
                        outcomes.append((True, value))
            conn.execute("COMMIT")
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            if wal is not None:
                wal.end()
    except Exception as exc:  # BEGIN, COMMIT, ROLLBACK TO or a lone operation failed
        outcomes = [(False, exc)] * len(batch)
    # one wake-up per event loop for the whole batch, not one per operation (each
    # call_soon_threadsafe writes to the loop's self-pipe)
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], coalesce.Outcome]]]
    by_loop = {}
    for (_, _, fut, loop), outcome in zip(batch, outcomes, strict=True):
        by_loop.setdefault(loop, []).append((fut, outcome))
    for loop, settled in by_loop.items():
        loop.call_soon_threadsafe(_settle_all, settled)
