"""Monitoring (issue 7): /metrics against the store, readiness, bulk actions, overview, CLI."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3

import anyio
from prometheus_client.parser import text_string_to_metric_families

from gateway.cli import main as cli
from tests.conftest import base_config, example

OPS, VIEWER = "ops-secret", "viewer-secret"


def ace_config(tmp_path, receiver, **sections):
    """One http adapter `ace` to the test receiver; slow retries so a retrying one stays so."""
    return base_config(
        tmp_path,
        adapters={"ace": {"type": "http", "url": receiver.url, "timeout": "5s"}},
        routes=[{"filing_types": ["*"], "adapters": ["ace"]}],
        retry={"max_attempts": 5, "initial_delay": "10m", "max_delay": "1h", "jitter": "0s"},
        monitoring={"queue_cache": "0s", **sections.pop("monitoring", {})},
        **sections,
    )


def auth_section():
    def sha(s):
        return hashlib.sha256(s.encode()).hexdigest()

    return {
        "mode": "token",
        "tokens": {
            "ops": {"sha256": sha(OPS), "scopes": ["submit", "read", "operate"]},
            "viewer": {"sha256": sha(VIEWER), "scopes": ["read"]},
        },
    }


async def submit(gw, ref, **kw):
    status, body = await gw.post("/v1/filings", example(reference=ref), **kw)
    assert status == 202, body
    return body["id"]


async def scripted_scenario(gw, receiver):
    """Two delivered, one dead (HTTP 400), one retrying (HTTP 500): in that order of sends."""
    receiver.script = [400]
    dead = await submit(gw, "DEAD-1")
    await gw.wait_for(dead, "dead")
    receiver.script = [500]
    retrying = await submit(gw, "RETRY-1")
    await gw.wait_for(retrying, "retrying")
    ok = [await submit(gw, f"OK-{i}") for i in range(2)]
    for fid in ok:
        await gw.wait_for(fid, "delivered")
    return dead, retrying, ok


def scrape(text):
    """{(name, frozenset(labels)): value} of every sample."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def sample(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


async def test_metrics_figures_match_the_store_after_a_scripted_scenario(
    tmp_path, start_gateway, receiver
):
    """Scraped /metrics agree with the store: states, attempts, outcomes, latency, ages."""
    gw = await start_gateway(ace_config(tmp_path, receiver))
    await scripted_scenario(gw, receiver)
    async with gw.session.get(gw.url + "/metrics") as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        samples = scrape(await r.text())
    counts = await gw.gateway.store.counts()
    assert counts == {"ace": {"delivered": 2, "dead": 1, "waiting_retry": 1}}
    for state in ("pending", "in_flight", "deferred", "blocked", "cancelled"):
        assert sample(samples, "edigw_deliveries", adapter="ace", state=state) == 0
    for state, n in counts["ace"].items():
        assert sample(samples, "edigw_deliveries", adapter="ace", state=state) == n
    env = example()["environment"]
    assert sample(samples, "edigw_filings_accepted_total", filing_type="isf", environment=env) == 4
    for outcome, n in (("delivered", 2), ("dead", 1), ("retry", 1), ("deferred", 0)):
        assert sample(samples, "edigw_delivery_attempts_total", adapter="ace", outcome=outcome) == n
    assert sample(samples, "edigw_adapter_send_seconds_count", adapter="ace") == 4
    assert sample(samples, "edigw_delivery_latency_seconds_count", adapter="ace") == 2
    assert sample(samples, "edigw_oldest_waiting_delivery_age_seconds", adapter="ace") > 0
    assert sample(samples, "edigw_filings_at_risk") == 0
    assert sample(samples, "edigw_adapter_breaker_state", adapter="ace", state="closed") == 1
    assert sample(samples, "edigw_adapter_in_outage", adapter="ace") == 0
    assert ("process_cpu_seconds_total", frozenset()) in samples


async def test_two_processes_report_the_same_queue_gauges(tmp_path, start_gateway, receiver):
    """Two gateways on one store: each its own process counters, the same queue gauges."""
    data = ace_config(tmp_path, receiver)
    first = await start_gateway(data)
    second = await start_gateway(data)
    await scripted_scenario(first, receiver)
    texts = []
    for gw in (first, second):
        async with gw.session.get(gw.url + "/metrics") as r:
            texts.append(scrape(await r.text()))
    for state in ("delivered", "dead", "waiting_retry"):
        a, b = (sample(t, "edigw_deliveries", adapter="ace", state=state) for t in texts)
        assert a == b > 0
    env = example()["environment"]
    key = (
        "edigw_filings_accepted_total",
        frozenset({"filing_type": "isf", "environment": env}.items()),
    )
    accepted = [t.get(key, 0) for t in texts]
    assert accepted == [4, 0]


async def test_queue_figures_are_cached_between_scrapes(tmp_path, start_gateway, receiver):
    """With queue_cache = 1h the store is read once: a new filing does not show until it expires."""
    gw = await start_gateway(ace_config(tmp_path, receiver, monitoring={"queue_cache": "1h"}))
    _, first = await gw.get("/v1/overview")
    fid = await submit(gw, "LATE-1")
    await gw.wait_for(fid, "delivered")
    _, second = await gw.get("/v1/overview")
    assert first["snapshot_at"] == second["snapshot_at"]
    assert second["totals"]["delivered"] == first["totals"]["delivered"]


async def test_store_errors_are_counted_by_operation(tmp_path, start_gateway, receiver):
    """A store that fails shows in edigw_store_errors_total and turns /readyz 503 (store)."""
    gw = await start_gateway(ace_config(tmp_path, receiver))
    await gw.gateway.store.inner.close()
    status, body = await gw.get("/readyz")
    assert status == 503 and body["failing"] == ["migrations", "store"]
    assert body["checks"]["store"].startswith("failing")
    async with gw.session.get(gw.url + "/metrics") as r:
        assert r.status == 503  # the queue cannot be read: an error, not stale figures
    samples = scrape(gw.gateway.metrics.render().decode())
    assert sample(samples, "edigw_store_errors_total", operation="ping") >= 1


async def test_readyz_names_migrations_behind(tmp_path, start_gateway, receiver):
    """A database at an older schema version makes /readyz 503 naming `migrations`."""
    gw = await start_gateway(ace_config(tmp_path, receiver))
    with sqlite3.connect(tmp_path / "gateway.db") as conn:
        conn.execute("UPDATE schema_version SET version = 1")
    status, body = await gw.get("/readyz")
    assert status == 503 and body["failing"] == ["migrations"]
    assert "behind" in body["checks"]["migrations"]
    assert (await gw.get("/livez")) == (200, {"status": "ok"})


async def test_readyz_names_a_stopped_dispatcher(tmp_path, start_gateway, receiver):
    """When the dispatcher stops, /readyz is 503 naming `dispatcher`; /healthz stays 200."""
    gw = await start_gateway(ace_config(tmp_path, receiver))
    await gw.gateway.dispatcher.stop(0)
    for _ in range(200):
        if not gw.gateway.dispatcher.running:
            break
        await asyncio.sleep(0.01)
    status, body = await gw.get("/readyz")
    assert status == 503 and body["failing"] == ["dispatcher"]
    assert (await gw.get("/healthz")) == (200, {"status": "ok"})


async def test_readyz_flips_on_shutdown_before_intake_stops(tmp_path, start_gateway, receiver):
    """During the drain delay /readyz is 503 (`shutdown`) while filings are still accepted."""
    gw = await start_gateway(ace_config(tmp_path, receiver, monitoring={"drain_delay": "1s"}))
    gw.stop_event.set()
    for _ in range(100):
        if gw.gateway.service.shutting_down:
            break
        await asyncio.sleep(0.01)
    status, body = await gw.get("/readyz")
    assert status == 503 and body["failing"] == ["shutdown"]
    fid = await submit(gw, "DURING-DRAIN")
    assert fid.startswith("fil_")


async def test_an_adapter_outage_degrades_but_keeps_the_gateway_ready(
    tmp_path, start_gateway, receiver
):
    """An announced outage: /readyz 200 `degraded` naming the adapter; intake goes on."""
    gw = await start_gateway(ace_config(tmp_path, receiver))
    status, _ = await gw.post("/v1/outages", {"adapter": "ace", "reason": "CSMS 123"})
    assert status == 201
    body = {}
    for _ in range(100):
        status, body = await gw.get("/readyz")
        if body["status"] == "degraded":
            break
        await asyncio.sleep(0.05)
    assert status == 200 and body["status"] == "degraded" and "ace" in body["degraded"], body
    fid = await submit(gw, "IN-OUTAGE")
    await gw.wait_for(fid, "deferred")
    async with gw.session.get(gw.url + "/metrics") as r:
        samples = scrape(await r.text())
    assert sample(samples, "edigw_adapter_in_outage", adapter="ace") == 1
    assert sample(samples, "edigw_adapter_gate_state", adapter="ace", state="closed") == 1


async def test_bulk_retry_previews_needs_a_reason_and_audits_the_token(
    tmp_path, start_gateway, receiver
):
    """Dry run changes nothing; acting needs operate and a reason, audited with the token name."""
    gw = await start_gateway(ace_config(tmp_path, receiver, auth=auth_section()))
    ops = {"Authorization": f"Bearer {OPS}"}
    viewer = {"Authorization": f"Bearer {VIEWER}"}
    receiver.script = [400, 400, 400]
    for i in range(3):
        await submit(gw, f"DEAD-{i}", headers=ops)
    for _ in range(300):
        _, page = await gw.get("/v1/filings?status=dead", headers=ops)
        if len(page["items"]) == 3:
            break
        await asyncio.sleep(0.02)
    status, preview = await gw.post(
        "/v1/deliveries/retry", {"state": "dead", "adapter": "ace", "dry_run": True}, headers=ops
    )
    assert status == 200 and preview["matched"] == 3 and preview["count"] == 3
    assert (await gw.gateway.store.counts())["ace"]["dead"] == 3
    status, body = await gw.post("/v1/deliveries/retry", {"state": "dead"}, headers=ops)
    assert status == 422 and body["error"]["details"][0]["loc"] == "body.reason"
    status, _ = await gw.post(
        "/v1/deliveries/retry", {"state": "dead", "reason": "x"}, headers=viewer
    )
    assert status == 403
    status, step = await gw.post(
        "/v1/deliveries/retry",
        {"state": "dead", "reason": "ACE back up", "limit": 2, "not_after": preview["as_of"]},
        headers=ops,
    )
    assert status == 200 and step["count"] == 2 and step["remaining"] == 1
    retried = step["deliveries"][0]["filing_id"]
    await asyncio.sleep(0)
    status, hist = await gw.get(f"/v1/filings/{retried}/history", headers=ops)
    events = [e for e in hist["events"] if e["event"] == "delivery.retried"]
    assert events and events[0]["actor"] == "ops"
    assert events[0]["details"]["reason"] == "ACE back up"
    for fid in {d["filing_id"] for d in step["deliveries"]}:
        for _ in range(300):
            _, f = await gw.get(f"/v1/filings/{fid}", headers=ops)
            if f["status"] == "delivered":
                break
            await asyncio.sleep(0.02)
        assert f["status"] == "delivered"
    status, body = await gw.post(
        "/v1/deliveries/retry", {"state": "delivered", "reason": "no"}, headers=ops
    )
    assert status == 422


async def test_bulk_cancel_cancels_only_the_matching_adapter(tmp_path, start_gateway, receiver):
    """Cancel by adapter and state touches only those deliveries and audits each."""
    gw = await start_gateway(ace_config(tmp_path, receiver))
    receiver.script = [500, 500]
    fids = [await submit(gw, f"R-{i}") for i in range(2)]
    for fid in fids:
        await gw.wait_for(fid, "retrying")
    status, body = await gw.post(
        "/v1/deliveries/cancel",
        {"state": "waiting_retry", "adapter": "ace", "reason": "superseded"},
    )
    assert status == 200 and body["count"] == 2 and body["remaining"] == 0
    for fid in fids:
        await gw.wait_for(fid, "cancelled")


async def test_top_and_bulk_retry_from_the_cli(tmp_path, start_gateway, receiver, capsys):
    """`top --once/--json` show the queue; `retry --state dead --dry-run` changes nothing;
    `retry --state dead --reason` retries them with a progress line; `retry ID` still works."""
    gw = await start_gateway(ace_config(tmp_path, receiver))
    receiver.script = [400, 400]
    dead = [await submit(gw, f"D-{i}") for i in range(2)]
    for fid in dead:
        await gw.wait_for(fid, "dead")

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main([*argv, "--url", gw.url])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = await anyio.to_thread.run_sync(run, "top", "--json")
    assert code == 0 and json.loads(out)["totals"]["dead"] == 2
    code, out, _ = await anyio.to_thread.run_sync(run, "top", "--once")
    assert code == 0 and "ADAPTER" in out and "DEAD" in out
    line = next(li for li in out.splitlines() if li.startswith("ace"))
    assert line.split()[4 + 8] == "2"  # ADAPTER HEALTH BREAKER GATE, then DEAD is 9th
    code, out, _ = await anyio.to_thread.run_sync(
        run, "retry", "--state", "dead", "--adapter", "ace", "--dry-run", "--json"
    )
    assert code == 0 and json.loads(out)["matched"] == 2 and json.loads(out)["dry_run"]
    code, out, _ = await anyio.to_thread.run_sync(
        run, "retry", "--state", "dead", "--adapter", "ace", "--dry-run"
    )
    assert code == 0 and "would retry 2 deliveries" in out and dead[0] in out
    assert (await gw.gateway.store.counts())["ace"]["dead"] == 2
    code, _, err = await anyio.to_thread.run_sync(run, "retry", "--state", "dead")
    assert code == 2 and "reason" in err
    code, out, err = await anyio.to_thread.run_sync(
        run, "retry", "--state", "dead", "--reason", "receiver fixed", "--chunk", "1"
    )
    assert code == 0 and "retried 2 of 2 deliveries" in out
    assert "[###############...............] 1/2 retried" in err and "2/2 retried" in err
    for fid in dead:
        await gw.wait_for(fid, "delivered")
    code, _, err = await anyio.to_thread.run_sync(run, "retry", dead[0])
    assert code == 4 and "409" in err
    code, out, _ = await anyio.to_thread.run_sync(run, "list", "--limit", "5")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["ID", "STATUS", "TYPE"]
    assert "ace:delivered" in out


async def test_docs_page_and_spec_cover_every_route(tmp_path, start_gateway, receiver):
    """/docs renders offline from the spec; every API and dashboard route is in /openapi.json."""
    from gateway.api.app import ROUTES, UI_ROUTES

    gw = await start_gateway(ace_config(tmp_path, receiver))
    _, spec = await gw.get("/openapi.json")
    for method, path, _, _ in ROUTES + UI_ROUTES:
        assert method.lower() in spec["paths"][path], path
    async with gw.session.get(gw.url + "/docs") as r:
        text = await r.text()
        assert r.status == 200 and r.content_type == "text/html"
    assert (
        "/v1/deliveries/retry" in text
        and "BulkRequest" in text
        and "http" not in text.split("<body>")[0].replace("http-equiv", "")
    )
    async with gw.session.get(gw.url + "/ui/static/dashboard.js") as r:
        assert r.status == 200 and "sessionStorage" in await r.text()
    status, body = await gw.get("/ui/static/nope.js")
    assert status == 404 and body["error"]["code"] == "not_found"
