"""Issue 22's per-filer views: delivery metrics and the queue by filer (bounded labels),
``/v1/overview``'s ``filers`` and ``?filer=``, ``top --filer``; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import anyio
from prometheus_client.parser import text_string_to_metric_families

from gateway.cli import main as cli
from tests.conftest import base_config, example


def scrape(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_delivery_metrics_and_the_queue_are_split_by_filer(
    tmp_path: Any, start_gateway: Any, receiver: Any, store_url: str, capsys: Any
) -> None:
    """BBB (labelled) and CCC (not: `other`) each get one delivered; a second BBB filing
    fails (HTTP 500) and waits to retry. /metrics counts attempts, latency and the waiting
    queue per filer label; /v1/overview lists the queue by filer (`?filer=` one code, zeros
    for an idle one); `top --filer BBB --once` prints BBB's row."""
    cfg = base_config(
        tmp_path,
        gateway={"store": store_url},
        adapters={"ace": {"type": "http", "url": receiver.url, "timeout": "5s"}},
        routes=[{"filing_types": ["*"], "adapters": ["ace"]}],
        retry={"max_attempts": 5, "initial_delay": "10m", "max_delay": "1h", "jitter": "0s"},
        monitoring={"queue_cache": "0s"},
        metrics={"filer_labels": ["BBB"]},
    )
    gw = await start_gateway(cfg)
    for ref, filer in (("B-1", "BBB"), ("C-1", "CCC")):
        _, body = await gw.post("/v1/filings", example(reference=ref, filer_code=filer))
        await gw.wait_for(body["id"], "delivered")
    receiver.script = [500]
    _, body = await gw.post("/v1/filings", example(reference="B-2", filer_code="BBB"))
    await gw.wait_for(body["id"], "retrying")

    async with gw.session.get(gw.url + "/metrics") as r:
        m = scrape(await r.text())

    def at(name: str, **labels: str) -> float:
        return m[(name, frozenset(labels.items()))]

    attempts = "edigw_filer_delivery_attempts_total"
    assert at(attempts, filer="BBB", outcome="delivered") == 1
    assert at(attempts, filer="BBB", outcome="retry") == 1
    assert at(attempts, filer="other", outcome="delivered") == 1
    assert at("edigw_filer_delivery_latency_seconds_count", filer="BBB") == 1
    assert at("edigw_filer_filings_waiting", filer="BBB", status="retrying") == 1
    assert not any(dict(k[1]).get("filer") == "CCC" for k in m)  # bounded: CCC is `other`

    _, ov = await gw.get("/v1/overview")
    assert ov["filers"] == [{"filer_code": "BBB", "counts": {"retrying": 1}, "waiting": 1}]
    _, ov = await gw.get("/v1/overview?filer=CCC")
    assert ov["filers"] == [{"filer_code": "CCC", "counts": {}, "waiting": 0}]
    status, err = await gw.get("/v1/overview?filers=CCC")
    assert status == 422 and err["error"]["details"][0]["loc"] == "query.filers", err

    def top(*argv: str) -> str:
        assert cli.main(["top", *argv, "--url", gw.url]) == 0
        return str(capsys.readouterr().out)

    out = await anyio.to_thread.run_sync(top, "--filer", "BBB", "--once")
    row = next(li for li in out.splitlines() if li.startswith("BBB"))
    assert row.split() == ["BBB", "0", "0", "1", "0", "0", "1"]  # RETRYING, WAITING
    shown = json.loads(await anyio.to_thread.run_sync(top, "--filer", "CCC", "--json"))
    assert [f["filer_code"] for f in shown["filers"]] == ["CCC"]
    await gw.stop()  # before the PostgreSQL schema is dropped
