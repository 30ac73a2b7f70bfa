"""Issue 22 quotas: over a filer's or a token's intake rate or pending limit → 429 with
Retry-After naming the limit; nothing accepted is lost; a replay is never refused."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from gateway.api import quotas
from tests.conftest import base_config, example

SECRET = "quota-token-secret-0123456789"


def test_a_bucket_refills_at_its_rate_up_to_its_depth():
    """Two taken at once (depth 2), the third waits 1/rate; refilled, never past depth."""
    b = quotas.Bucket(rate=2.0, depth=2)
    assert b.wait_s(100.0) == 0
    b.take()
    assert b.wait_s(100.0) == 0
    b.take()
    assert b.wait_s(100.0) == 0.5
    assert b.wait_s(100.25) == 0.25
    assert b.wait_s(1000.0) == 0 and b.tokens == 2.0


def _cfg(tmp_path: Any, **sections: Any) -> dict[str, Any]:
    return base_config(tmp_path, **sections)


async def _post(gw: Any, event: dict[str, Any], **kw: Any) -> tuple[int, Any, dict[str, str]]:
    async with gw.session.post(gw.url + "/v1/filings", json=event, **kw) as r:
        return r.status, await r.json(), dict(r.headers)


async def test_over_the_filer_rate_is_429_with_retry_after_and_a_replay_still_passes(
    tmp_path, start_gateway
):
    """Burst 2 at a rate that never refills in the test: the third filing of XYZ is 429
    (Retry-After, the limit named), another filer goes on, the first one's replay is 200."""
    gw = await start_gateway(
        _cfg(tmp_path, quotas={"filers": {"XYZ": {"intake_per_second": 0.001, "burst": 2}}})
    )
    first = example(filer_code="XYZ", reference="Q-1", idempotency_key="q-1")
    accepted = []
    for event in (first, example(filer_code="XYZ", reference="Q-2")):
        status, body, _ = await _post(gw, event)
        assert status == 202, body
        accepted.append(body["id"])
    status, body, headers = await _post(gw, example(filer_code="XYZ", reference="Q-3"))
    assert status == 429, body
    assert int(headers["Retry-After"]) >= 1
    assert body["error"]["code"] == "quota_exceeded"
    details = body["error"]["details"]
    assert (details["limit"], details["filer_code"], details["burst"]) == (
        "intake_per_second",
        "XYZ",
        2,
    )
    status, body, _ = await _post(gw, first)  # a replay of an accepted filing
    assert (status, body["id"]) == (200, accepted[0]), body
    status, body, _ = await _post(gw, example(filer_code="OTHER", reference="Q-4"))
    assert status == 202, body  # [quotas.default] has no limit
    for fid in accepted:  # nothing accepted is lost
        await gw.wait_for(fid, "delivered")
    _, listed = await gw.get("/v1/filings?filer_code=XYZ")
    assert {i["id"] for i in listed["items"]} == set(accepted)  # the refused one: not stored


async def test_a_batch_refuses_only_the_items_over_the_quota(tmp_path, start_gateway):
    """In a batch, each item over the default quota gets its own 429; the rest go in."""
    gw = await start_gateway(
        _cfg(tmp_path, quotas={"default": {"intake_per_second": 0.001, "burst": 2}})
    )
    batch = [example(filer_code="B1", reference=f"QB-{i}") for i in range(3)]
    batch.append(example(filer_code="B2", reference="QB-other"))
    status, body = await gw.post("/v1/filings/batch", batch)
    assert status == 200, body
    assert [r["http_status"] for r in body["results"]] == [202, 202, 429, 202], body
    assert body["results"][2]["error"]["details"]["limit"] == "intake_per_second"


async def test_a_token_quota_limits_that_token_across_filers(tmp_path, start_gateway):
    """[quotas.tokens.NAME]: the token's third filing is refused whatever its filer code."""
    tokens = {"svc": {"sha256": hashlib.sha256(SECRET.encode()).hexdigest()}}
    gw = await start_gateway(
        _cfg(
            tmp_path,
            auth={"mode": "token", "tokens": tokens},
            quotas={"tokens": {"svc": {"intake_per_second": 0.001, "burst": 2}}},
        )
    )
    headers = {"Authorization": f"Bearer {SECRET}"}
    codes = []
    for i, filer in enumerate(("T1", "T2", "T3")):
        status, body, _ = await _post(
            gw, example(filer_code=filer, reference=f"QT-{i}"), headers=headers
        )
        codes.append(status)
    assert codes == [202, 202, 429]
    assert body["error"]["details"]["token"] == "svc"
    assert body["error"]["details"]["scope"] == "token"


async def test_max_pending_refuses_until_the_filers_filings_settle(
    tmp_path, start_gateway, receiver
):
    """Two filings held in flight fill max_pending = 2: the third is 429 naming max_pending;
    once the two are delivered (the store's count drops), the next one is accepted."""
    receiver.hang = asyncio.Event()
    gw = await start_gateway(
        _cfg(
            tmp_path,
            adapters={"ace": {"type": "http", "url": receiver.url, "timeout": "30s"}},
            routes=[{"filing_types": ["*"], "adapters": ["ace"]}],
            quotas={"filers": {"P1": {"max_pending": 2}}, "pending_refresh": "0s"},
        )
    )
    held = []
    for i in range(2):
        status, body, _ = await _post(gw, example(filer_code="P1", reference=f"QP-{i}"))
        assert status == 202, body
        held.append(body["id"])
    status, body, headers = await _post(gw, example(filer_code="P1", reference="QP-2"))
    assert status == 429, body
    assert body["error"]["details"]["limit"] == "max_pending"
    # 2, or 3 when a recount read the second filing and it was also counted locally
    assert body["error"]["details"]["pending"] in (2, 3)
    assert headers["Retry-After"] == "5"
    receiver.hang.set()
    for fid in held:
        await gw.wait_for(fid, "delivered")
    quota = gw.gateway.app[quotas.QUOTAS]
    for _ in range(2):  # the first may meet counts from before the deliveries; it recounts
        status, body, _ = await _post(gw, example(filer_code="P1", reference="QP-3"))
        if status == 202:
            break
        await quota.recounted()
    assert status == 202, body


async def test_metrics_label_configured_filers_and_aggregate_the_rest(tmp_path, start_gateway):
    """[metrics] filer_labels: accepted filings and quota refusals per listed filer code;
    every other code is counted as `other` (the label set stays bounded)."""
    gw = await start_gateway(
        _cfg(
            tmp_path,
            metrics={"filer_labels": ["M1"]},
            quotas={"default": {"intake_per_second": 0.001, "burst": 1}},
        )
    )
    events = [("M1", 202), ("M1", 429), ("Z9", 202), ("Z8", 202), ("Z8", 429)]
    for i, (filer, expected) in enumerate(events):
        status, body, _ = await _post(gw, example(filer_code=filer, reference=f"QM-{i}"))
        assert status == expected, body
    async with gw.session.get(gw.url + "/metrics") as r:
        text = await r.text()
    assert 'edigw_filer_filings_accepted_total{filer="M1"} 1.0' in text
    assert 'edigw_filer_filings_accepted_total{filer="other"} 2.0' in text
    assert 'edigw_quota_refusals_total{filer="M1",limit="intake_per_second"} 1.0' in text
    assert 'edigw_quota_refusals_total{filer="other",limit="intake_per_second"} 1.0' in text
    assert "Z9" not in text and "Z8" not in text


async def test_between_two_counts_this_processs_own_accepts_count(tmp_path, start_gateway):
    """With a recount only every hour, the two filings this process accepted since the
    store's count fill max_pending = 2 on their own (delivered or not)."""
    gw = await start_gateway(
        _cfg(tmp_path, quotas={"filers": {"L1": {"max_pending": 2}}, "pending_refresh": "1h"})
    )
    codes = []
    for i in range(3):
        status, _, _ = await _post(gw, example(filer_code="L1", reference=f"QL-{i}"))
        codes.append(status)
    assert codes == [202, 202, 429]
