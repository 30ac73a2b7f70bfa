"""Issue 22: a filer's delivery rate through a running gateway (SQLite and PostgreSQL): the
limited filer is sent at its rate, measured by the deliveries' recorded times; the other
filer is not slowed; per-key order holds; every filing reaches the loopback receiver once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.conftest import base_config, example

RATE = 20.0  # AAA's delivery_rate, per second; depth 1
N_A, N_B = 60, 30


def _at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


async def test_a_limited_filer_is_sent_at_its_rate_and_the_other_is_not_slowed(
    tmp_path: Any, start_gateway: Any, receiver: Any, store_url: str
) -> None:
    """AAA (60 filings on 4 ordering keys, accepted first) limited to 20/s, burst 1; BBB
    (30, accepted after) unlimited, on one adapter of concurrency 4. AAA's recorded
    delivery times: no half second holds more than its bucket allows (1 + 10, plus one
    for the time between claim and record), and the whole drains at no less than 0.4 x
    the rate (a refill is waited for as a deadline, not the 200 ms scan). BBB is delivered
    while a sixth of AAA's backlog still waits. Each
    filing reaches the receiver once, in its key's order; the limit is counted in the
    metrics."""
    cfg = base_config(
        tmp_path,
        gateway={"store": store_url},
        adapters={"ace": {"type": "http", "url": receiver.url, "timeout": "5s", "concurrency": 4}},
        routes=[{"adapters": ["ace"]}],
        quotas={"filers": {"AAA": {"delivery_rate": RATE, "delivery_burst": 1}}},
        metrics={"filer_labels": ["AAA"]},
    )
    gw = await start_gateway(cfg)
    batch = [
        example(reference=f"A-{i}", filer_code="AAA", ordering_key=f"K{i % 4}") for i in range(N_A)
    ]
    status, body = await gw.post("/v1/filings/batch", batch)
    assert status == 200 and body["accepted"] == N_A, body
    a_ids = [r["id"] for r in body["results"]]
    status, body = await gw.post(
        "/v1/filings/batch", [example(reference=f"B-{i}", filer_code="BBB") for i in range(N_B)]
    )
    assert status == 200 and body["accepted"] == N_B, body
    b_ids = [r["id"] for r in body["results"]]
    views = {i: await gw.wait_for(i, "delivered", timeout=60) for i in a_ids + b_ids}

    sent = {i: [_at(d["delivered_at"]) for d in v["deliveries"]] for i, v in views.items()}
    assert all(len(t) == 1 for t in sent.values())
    assert all(v["deliveries"][0]["attempts"] == 1 for v in views.values())
    assert len(receiver.requests) == N_A + N_B and len(set(receiver.keys)) == N_A + N_B

    a_times = sorted(sent[i][0] for i in a_ids)
    for k, start in enumerate(a_times):  # any half second: at most 1 + 10 (+1 of jitter)
        assert sum(1 for t in a_times[k:] if t < start + 0.5) <= 12, a_times
    span = a_times[-1] - a_times[0]
    assert span >= (N_A - 1) / RATE * 0.9, span
    assert (N_A - 1) / span >= 0.4 * RATE, span

    # not held to AAA's pace: BBB, accepted after AAA's 60, is all sent while AAA's
    # backlog still waits (counted in AAA's deliveries, not in seconds: on a loaded machine
    # BBB's latency grows while AAA keeps its wall-clock rate)
    b_last = max(sent[i][0] for i in b_ids)
    assert sum(1 for t in a_times if t > b_last) >= N_A // 6, (b_last, a_times)

    for key in range(4):  # per-key order: the receiver got each key's filings in order
        keyed = [i for n, i in enumerate(a_ids) if n % 4 == key]
        assert [sent[i][0] for i in keyed] == sorted(sent[i][0] for i in keyed)

    async with gw.session.get(gw.url + "/metrics") as r:
        text = await r.text()
    line = next(
        x
        for x in text.splitlines()
        if x.startswith('edigw_filer_delivery_rate_limited_total{filer="AAA"}')
    )
    assert float(line.split()[-1]) >= N_A / 2, line
