"""Audit rows reach the table exactly as they were chained, on both backends.

PostgreSQL receives a transaction's audit rows as one JSON parameter that the statement
unpacks (``sansio``'s "table" request; cheaper for asyncpg than nine arrays): quotes,
backslashes, control characters, non-ASCII text and NULLs must come back byte for byte,
or the stored hashes would stop proving the rows.
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway import values
from gateway.audit import chain
from gateway.store import base

#: strings JSON escapes or could mistake for something else
AWKWARD = [
    'a "quoted" word and a back\\slash',
    "tab\tnewline\ncarriage\rbell\x07 unit\x1f",
    "é 漢字 😀 \u2028",
    "",
    "null",
    "[1, 2]",
    "9223372036854775807",
]


async def test_awkward_audit_rows_are_stored_exactly_and_the_chain_verifies(
    store: base.Store,
) -> None:
    """Every field of every row reads back as written; each hash is recomputed and holds."""
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    for i, text in enumerate(AWKWARD):
        details = {"text": text, "n": i, "none": None, "deep": {"list": [text, 1.5, True]}}
        await store.append_audit(
            f"test.{i}", actor=values.Actor(name=f"actor {text}"), now=now, details=details
        )
    rows = [r async for r in store.audit_rows()]
    assert [(r.event, r.actor, r.filing_id, r.delivery_id) for r in rows] == [
        (f"test.{i}", f"actor {t}", None, None) for i, t in enumerate(AWKWARD)
    ]
    assert [r.details["text"] for r in rows] == AWKWARD
    assert [r.details["deep"] for r in rows] == [{"list": [t, 1.5, True]} for t in AWKWARD]
    assert all(r.details["none"] is None for r in rows)
    prev = chain.GENESIS
    for r in rows:
        assert r.prev_hash == prev
        assert r.hash == chain.row_hash(
            prev,
            seq=r.seq,
            at=r.at,
            actor=r.actor,
            filing_id=r.filing_id,
            delivery_id=r.delivery_id,
            event=r.event,
            details=r.details,
        )
        prev = r.hash
