"""Row 11: idempotency under concurrency; the reused-key and state-conflict errors."""

from __future__ import annotations

import asyncio
import sqlite3
import time

from tests.conftest import base_config, example

KEYS, DUPLICATES = 50, 20


async def test_fifty_keys_times_twenty_concurrent_duplicates_make_exactly_fifty_filings(
    tmp_path, start_gateway, figure
):
    """Row 11: 1,000 concurrent POSTs over 50 keys → 50 filings, one id per key, 1 x 202."""
    gw = await start_gateway(base_config(tmp_path))
    started = time.monotonic()

    async def post(k: int) -> tuple[int, str]:
        ev = example(reference=f"IDEM-{k}", idempotency_key=f"idem-{k}")
        status, body = await gw.post("/v1/filings", ev)
        return status, body.get("id", "")

    jobs = [post(k) for _ in range(DUPLICATES) for k in range(KEYS)]
    results = await asyncio.gather(*jobs)
    by_key: dict[int, set[str]] = {}
    statuses: dict[int, int] = {}
    for n, (status, fid) in enumerate(results):
        by_key.setdefault(n % KEYS, set()).add(fid)
        statuses[status] = statuses.get(status, 0) + 1
    assert statuses == {202: KEYS, 200: KEYS * (DUPLICATES - 1)}
    assert all(len(ids) == 1 for ids in by_key.values())
    with sqlite3.connect(tmp_path / "gateway.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM filings").fetchone()[0] == KEYS
        assert conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == KEYS
        accepted = conn.execute(
            "SELECT COUNT(*) FROM audit WHERE event = 'filing.accepted'"
        ).fetchone()[0]
    assert accepted == KEYS
    # the same key with another body: refused, nothing stored
    status, body = await gw.post(
        "/v1/filings", example(reference="IDEM-0-CHANGED", idempotency_key="idem-0")
    )
    assert status == 422 and body["error"]["code"] == "idempotency_key_reused"
    # a state conflict: retrying a filing that has nothing dead or blocked
    fid = next(iter(by_key[0]))
    await gw.wait_for(fid, "delivered")
    status, body = await gw.post(f"/v1/filings/{fid}/retry")
    assert status == 409 and body["error"]["code"]
    with sqlite3.connect(tmp_path / "gateway.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM filings").fetchone()[0] == KEYS
    figure(
        "row11",
        f"{KEYS} keys x {DUPLICATES} concurrent duplicates → {KEYS} filings "
        f"({statuses[202]}x202, {statuses[200]}x200, one id per key); reused key → 422 "
        f"idempotency_key_reused; retry of a delivered filing → 409; "
        f"{time.monotonic() - started:.1f}s",
    )
