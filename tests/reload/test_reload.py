"""Reload without restart (issue 21): validated whole first, refused naming the key,
in-flight sends on a changed adapter finish first, and under load nothing is lost or sent
twice. Real server, real SQLite file, a real loopback receiver counting by filing id."""

from __future__ import annotations

import asyncio
import copy
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from gateway import config
from tests.acks.conftest import eventually
from tests.conftest import base_config, example


@dataclass
class Counting:
    """Counts deliveries by filing id and by path; sets ``all_in`` at ``expect`` filings."""

    base: str = ""
    by_filing: Counter[str] = field(default_factory=Counter)
    paths: Counter[str] = field(default_factory=Counter)
    expect: int = 0
    all_in: asyncio.Event = field(default_factory=asyncio.Event)
    hang: asyncio.Event | None = None
    hanging: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def counting() -> AsyncIterator[Counting]:
    rec = Counting()

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        if rec.hang is not None and not rec.hang.is_set():
            rec.hanging.set()
            await rec.hang.wait()
        rec.by_filing[request.headers["X-EDI-Filing-Id"]] += 1
        rec.paths[request.path] += 1
        if rec.expect and len(rec.by_filing) >= rec.expect:
            rec.all_in.set()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield rec
    if rec.hang is not None:
        rec.hang.set()
    await runner.cleanup()


def web_config(tmp_path: Any, url: str, **sections: Any) -> dict[str, Any]:
    return base_config(
        tmp_path,
        adapters={"web": {"type": "http", "url": url, "concurrency": 4}},
        routes=[{"filing_types": ["*"], "adapters": ["web"]}],
        **sections,
    )


async def started(start_gateway: Any, data: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A gateway whose reload reads ``holder["data"]`` (as ``serve`` reads its file)."""
    holder = {"data": data}
    gw = await start_gateway(data, reload_from=lambda: config.parse_config(holder["data"], {}))
    return gw, holder


async def audited_reloads(gw: Any) -> list[dict[str, Any]]:
    """The ``config.reloaded`` rows of the audit trail, as stored."""
    return [r.details async for r in gw.gateway.store.audit_rows() if r.event == "config.reloaded"]


async def test_reload_under_load_delivers_every_filing_exactly_once(
    tmp_path, start_gateway, counting
):
    """Five reloads (url changed, adapter added and routed to, concurrency changed, route
    back, adapter's rate changed) while 240 filings are posted: each delivered once."""
    data = web_config(tmp_path, f"{counting.base}/a")
    gw, holder = await started(start_gateway, data)
    total, posters = 240, 4
    counting.expect = total
    accepted: list[str] = []
    step = asyncio.Event()

    async def post(worker: int) -> None:
        for i in range(total // posters):
            status, body = await gw.post(
                "/v1/filings",
                example(reference=f"RL-{worker}-{i}", idempotency_key=f"rl-{worker}-{i}"),
            )
            assert status == 202, body
            accepted.append(body["id"])
            if len(accepted) % 40 == 0:
                step.set()

    def changed(mutate: Any) -> None:
        new = copy.deepcopy(holder["data"])
        mutate(new)
        holder["data"] = new

    reloads = [
        lambda d: d["adapters"]["web"].update(url=f"{counting.base}/b"),
        lambda d: (
            d["adapters"].update(web2={"type": "http", "url": f"{counting.base}/c"}),
            d.update(routes=[{"filing_types": ["*"], "adapters": ["web2"]}]),
        ),
        lambda d: d["adapters"]["web"].update(concurrency=2),
        lambda d: d.update(routes=[{"filing_types": ["*"], "adapters": ["web"]}]),
        lambda d: d["adapters"]["web"].update(rate_limit=1000.0, burst=50),
    ]
    load = asyncio.gather(*(post(w) for w in range(posters)))
    results = []
    for mutate in reloads:  # each reload when another 40 filings are in
        await step.wait()
        step.clear()
        changed(mutate)
        results.append(await gw.gateway.reloader.reload())
    await load
    await asyncio.wait_for(counting.all_in.wait(), 60)  # a liveness bound
    for filing_id in accepted:
        await gw.wait_for(filing_id, "delivered")
    assert len(accepted) == total
    assert set(counting.by_filing) == set(accepted)
    assert [f for f, n in counting.by_filing.items() if n != 1] == []
    assert gw.gateway.reloader.reloads == 5
    assert [r["adapters_changed"] for r in results] == [["web"], ["web2"], ["web"], [], ["web"]]
    assert {"/a", "/b", "/c"} <= set(counting.paths)  # every adapter version carried some


async def test_in_flight_send_on_a_changed_adapter_finishes_before_the_new_one_starts(
    tmp_path, start_gateway, counting
):
    """A send hanging on the old URL: the reload waits for it; it is recorded delivered,
    once; the next filing goes to the new URL."""
    counting.hang = asyncio.Event()
    gw, holder = await started(start_gateway, web_config(tmp_path, f"{counting.base}/old"))
    _, first = await gw.post("/v1/filings", example(reference="HANG-1"))
    await counting.hanging.wait()  # the old adapter's send is in flight
    holder["data"] = copy.deepcopy(holder["data"])
    holder["data"]["adapters"]["web"]["url"] = f"{counting.base}/new"
    reload = asyncio.ensure_future(gw.gateway.reloader.reload())
    await eventually(lambda: "web" in gw.gateway.dispatcher._holding)  # it waits on the send
    assert not reload.done()
    counting.hang.set()
    result = await reload
    assert result["adapters_changed"] == ["web"]
    await gw.wait_for(first["id"], "delivered")
    _, second = await gw.post("/v1/filings", example(reference="HANG-2"))
    await gw.wait_for(second["id"], "delivered")
    assert counting.by_filing == {first["id"]: 1, second["id"]: 1}
    assert counting.paths == {"/old": 1, "/new": 1}


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda d: d["gateway"].update(listen="127.0.0.1:1"), "gateway.listen"),
        (lambda d: d["gateway"].update(store="sqlite:///elsewhere.db"), "gateway.store"),
        (lambda d: d["adapters"]["web"].update(concurrency=0), "adapters.web.concurrency"),
        (lambda d: d.update(routes=[{"filing_types": ["*"], "adapters": ["nope"]}]), "routes[0]"),
        (lambda d: d["adapters"]["web"].update(url="not a url"), "adapters.web"),
    ],
)
async def test_a_bad_or_fixed_key_refuses_the_whole_reload_naming_it(
    tmp_path, start_gateway, counting, mutate, key
):
    """422 with the key in details[0].loc; nothing changed, nothing audited as reloaded."""
    gw, holder = await started(start_gateway, web_config(tmp_path, f"{counting.base}/a"))
    new = copy.deepcopy(holder["data"])
    new["routes"] = [{"filing_types": ["isf"], "adapters": ["web"]}]  # a good change beside
    mutate(new)
    holder["data"] = new
    status, body = await gw.post("/v1/admin/reload")
    assert status == 422, body
    loc = body["error"]["details"][0]["loc"]
    if key is not None:
        assert loc.startswith(key), (loc, key)
    assert "nothing changed" in body["error"]["message"]
    assert gw.gateway.reloader.reloads == 0
    assert gw.gateway.cfg.routes[0].filing_types == ["*"]  # the good change was not applied
    assert await audited_reloads(gw) == []
    status, filed = await gw.post("/v1/filings", example(filing_type="entry", reference="E-1"))
    assert status == 202, filed  # still routed by the old rules


async def test_reload_is_audited_with_a_diff_and_secrets_redacted(
    tmp_path, start_gateway, counting
):
    """config.reloaded names each changed key; a header value that is a secret is masked;
    tokens and routes take effect at once."""
    gw, holder = await started(start_gateway, web_config(tmp_path, f"{counting.base}/a"))
    new = copy.deepcopy(holder["data"])
    new["adapters"]["web"]["headers"] = {"X-Api-Key": "sk-live-0123456789abcdefghij"}
    new["routes"] = [{"filing_types": ["isf"], "adapters": ["web"]}]
    holder["data"] = new
    status, body = await gw.post("/v1/admin/reload")
    assert status == 200, body
    changes = {c["key"]: c for c in body["changes"]}
    secret = changes["adapters.web.options.headers.X-Api-Key"]
    assert "from" not in secret
    assert secret["to"].endswith("ghij") and "0123456789" not in secret["to"]
    assert changes["routes"]["to"][0]["filing_types"] == ["isf"]
    [row] = await audited_reloads(gw)
    assert row["changes"] == body["changes"]
    assert "sk-live-0123456789abcdefghij" not in json.dumps(row)
    status, refused = await gw.post("/v1/filings", example(filing_type="entry", reference="E-2"))
    assert status == 422, refused  # the new routes are in force: entry is unroutable


async def test_a_token_added_by_reload_works_at_once_and_needs_admin_to_reload(
    tmp_path, start_gateway, counting
):
    """A new [auth.tokens] entry authenticates right after the reload; a token without the
    admin scope cannot reload (403)."""
    import hashlib

    def token(secret: str, *scopes: str) -> dict[str, Any]:
        return {"sha256": hashlib.sha256(secret.encode()).hexdigest(), "scopes": list(scopes)}

    data = web_config(
        tmp_path,
        f"{counting.base}/a",
        auth={"mode": "token", "tokens": {"ops": token("ops-secret-1", "read", "admin")}},
    )
    gw, holder = await started(start_gateway, data)
    reader = {"Authorization": "Bearer reader-secret-2"}
    admin = {"Authorization": "Bearer ops-secret-1"}
    assert (await gw.get("/v1/filings", headers=reader))[0] == 401
    new = copy.deepcopy(data)
    new["auth"]["tokens"]["reader"] = token("reader-secret-2", "read")
    holder["data"] = new
    assert (await gw.post("/v1/admin/reload", headers=reader))[0] == 401
    status, body = await gw.post("/v1/admin/reload", headers=admin)
    assert status == 200, body
    assert (await gw.get("/v1/filings", headers=reader))[0] == 200
    status, body = await gw.post("/v1/admin/reload", headers=reader)
    assert status == 403, body
