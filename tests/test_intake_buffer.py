"""Group commit and the bounded intake buffer (issue 9)."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest

from gateway import errors
from gateway.store import open as store_open
from tests.conftest import base_config, example
from tests.store.test_contract import ACTOR, T0, new


def filing_ids(tmp_path) -> set[str]:
    conn = sqlite3.connect(tmp_path / "gateway.db")
    try:
        return {r[0] for r in conn.execute("SELECT id FROM filings")}
    finally:
        conn.close()


async def test_group_commit_runs_each_operation_alone_inside_one_transaction(tmp_path):
    """Concurrent accepts share commits; one failing operation is undone alone, others stay."""
    store = store_open.open_store(f"sqlite:///{tmp_path / 'g.db'}")
    await store.open()
    try:
        await store.migrate()
        fresh = [new(f"R{i}") for i in range(30)]
        results = await asyncio.gather(
            *(store.accept([f], actor=ACTOR, now=T0) for f in fresh),
            store.retry_filing("fil_missing", actor=ACTOR, now=T0),
            return_exceptions=True,
        )
        assert isinstance(results[-1], errors.NotFound)
        created = [r[0] for r in results[:-1]]
        assert all(r.created for r in created)
        for r in created:
            assert await store.get_filing(r.filing_id) is not None
        rows = [r async for r in store.audit_rows()]
        assert len(rows) == 60  # filing.accepted + delivery.pending each, one unbroken chain
        from gateway.audit import chain as audit

        assert audit.verify_rows(rows).ok
    finally:
        await store.close()


async def test_concurrent_requests_each_get_202_only_after_their_commit(tmp_path, start_gateway):
    """Every 202 names a filing already committed; duplicates of one key stay one filing."""
    gw = await start_gateway(base_config(tmp_path))
    seen_committed: list[bool] = []

    async def post(event: dict[str, Any]) -> tuple[int, Any]:
        status, body = await gw.post("/v1/filings", event)
        if status == 202:  # read the file with another connection the moment the 202 lands
            seen_committed.append(body["id"] in filing_ids(tmp_path))
        return status, body

    events = [example(reference=f"GC-{i}") for i in range(40)]
    events += [example(idempotency_key="gc-same")] * 10
    results = await asyncio.gather(*(post(e) for e in events))
    assert seen_committed and all(seen_committed)
    statuses = [s for s, _ in results]
    assert statuses.count(202) == 41 and statuses.count(200) == 9
    assert len({b["id"] for _, b in results[40:]}) == 1
    assert len(filing_ids(tmp_path)) == 41


class _HeldAccept:
    """The service's store, with ``accept`` held until released (a slow disk, in effect)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.release = asyncio.Event()
        self.waiting = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def accept(self, *args: Any, **kw: Any) -> Any:
        self.waiting += 1
        await self.release.wait()
        return await self._store.accept(*args, **kw)


@pytest.mark.parametrize("path", ["/v1/filings", "/v1/filings/batch"])
async def test_full_intake_buffer_answers_503_with_retry_after_and_loses_nothing(
    tmp_path, start_gateway, path
):
    """Beyond max_pending_intake: 503 + Retry-After; every 202 is stored, nothing else is."""
    gw = await start_gateway(base_config(tmp_path, gateway={"max_pending_intake": 2}))
    service = gw.gateway.service
    held = _HeldAccept(service.store)
    service.store = held

    async def post(i: int) -> tuple[int, Any, str | None]:
        event = example(reference=f"BUF-{i}")
        body: Any = [event] if path.endswith("batch") else event
        async with gw.session.post(gw.url + path, json=body) as r:
            return r.status, await r.json(), r.headers.get("Retry-After")

    first = [asyncio.create_task(post(i)) for i in range(2)]
    while held.waiting < 2:
        await asyncio.sleep(0.01)
    refused = await asyncio.gather(*(post(i) for i in range(2, 6)))
    assert {s for s, _, _ in refused} == {503}
    assert all(ra == "1" for _, _, ra in refused)
    assert refused[0][1]["error"]["code"] == "unavailable"
    assert service.pending_intake == 2  # the buffer never grew past its limit
    held.release.set()
    accepted = await asyncio.gather(*first)
    assert [s for s, _, _ in accepted] == [202 if path == "/v1/filings" else 200] * 2
    assert len(filing_ids(tmp_path)) == 2 and service.pending_intake == 0
    status, _, _ = await post(2)  # a refused client that retries gets in
    assert status in (200, 202)
    assert len(filing_ids(tmp_path)) == 3
