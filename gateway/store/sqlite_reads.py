"""What is left of the SQLite reads (``reads`` has them, for both backends): the filings of
a claim, for ``sqlite_ops.claim``; it goes when the claim is folded.
"""

from __future__ import annotations

import sqlite3

from gateway import models
from gateway.store import rows, sqlite_schema


def load_filings(conn: sqlite3.Connection, seqs: set[int]) -> dict[int, models.Filing]:
    ordered = sorted(seqs)
    marks = ",".join("?" * len(ordered))
    return {
        r[0]: rows.filing(r)
        for r in conn.execute(
            f"SELECT {sqlite_schema.F_COLS} FROM filings f WHERE f.seq IN ({marks})", ordered
        )
    }
