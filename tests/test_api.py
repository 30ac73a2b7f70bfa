"""The HTTP API end to end on a real SQLite file and a real loopback server."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3

import pytest

from gateway import errors
from tests.conftest import EXAMPLES, base_config, example


def count_rows(tmp_path, table: str = "filings") -> int:
    with sqlite3.connect(tmp_path / "gateway.db") as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


async def test_every_example_is_delivered_as_a_file(tmp_path, start_gateway):
    """Events of every filing type → one file each in the outbox, and GET says delivered."""
    gw = await start_gateway(base_config(tmp_path))
    ids = {}
    for path in sorted(EXAMPLES.glob("*.json")):
        status, body = await gw.post("/v1/filings", json.loads(path.read_text()))
        assert status == 202, body
        assert body["status"] in ("pending", "in_progress", "delivered")
        assert len(body["deliveries"]) == 1
        ids[body["id"]] = body["deliveries"][0]["id"]
    for filing_id, _delivery_id in ids.items():
        view = await gw.wait_for(filing_id, "delivered")
        assert view["deliveries"][0]["receipt"]["status"] == "written"
    files = sorted(p.name for p in (tmp_path / "outbox").iterdir())
    assert len(files) == len(ids) == 16
    assert {f.split(".")[0] for f in files} == set(ids.values())
    x12 = [p for p in (tmp_path / "outbox").iterdir() if p.suffix == ".x12"]
    assert len(x12) == 1 and x12[0].read_text().startswith("ISA*00*")


async def test_a_new_filing_is_delivered_without_polling_delay(tmp_path, start_gateway):
    """The dispatcher is woken by intake: delivered well before the scan interval."""
    data = base_config(tmp_path, gateway={"scan_interval": "30s"})
    gw = await start_gateway(data)
    loop = asyncio.get_running_loop()
    start = loop.time()
    _, body = await gw.post("/v1/filings", example())
    await gw.wait_for(body["id"], "delivered", timeout=5)
    assert loop.time() - start < 2.0


async def test_idempotent_resubmission_returns_the_first_filing(tmp_path, start_gateway):
    """Same key + same body → 200 and the same id; same key + other body → 422."""
    gw = await start_gateway(base_config(tmp_path))
    event = example(idempotency_key="k-1")
    s1, b1 = await gw.post("/v1/filings", event)
    s2, b2 = await gw.post("/v1/filings", event)
    assert (s1, s2) == (202, 200) and b1["id"] == b2["id"] and b2["created"] is False
    s3, b3 = await gw.post("/v1/filings", {**event, "reference": "OTHER"})
    assert s3 == 422 and b3["error"]["code"] == "idempotency_key_reused"
    s4, b4 = await gw.post("/v1/filings", example(), headers={"Idempotency-Key": "k-1"})
    assert s4 == 200 and b4["id"] == b1["id"]
    assert count_rows(tmp_path) == 1


async def test_concurrent_duplicates_make_one_filing(tmp_path, start_gateway):
    """20 concurrent posts with one key → one filing; every answer names the same id."""
    gw = await start_gateway(base_config(tmp_path))
    event = example(idempotency_key="same-key")
    results = await asyncio.gather(*(gw.post("/v1/filings", event) for _ in range(20)))
    statuses = sorted(s for s, _ in results)
    assert statuses == [200] * 19 + [202]
    assert len({b["id"] for _, b in results}) == 1
    assert count_rows(tmp_path) == 1 and count_rows(tmp_path, "deliveries") == 1


def _big_event() -> dict:
    return example(payload={"blob": "x" * 5000})


BAD_INPUTS = [
    ("malformed json", b'{"filing_type": "isf"', 400, "malformed", None),
    ("empty body", b"", 400, "malformed", None),
    ("not an object", json.dumps([1, 2]).encode(), 422, "invalid", "body"),
    ("wrong type", json.dumps(example(reference=123)).encode(), 422, "invalid", "reference"),
    ("unknown field", json.dumps(example(colour="red")).encode(), 422, "invalid", "colour"),
    (
        "unknown filing type",
        json.dumps(example(filing_type="isf.v3")).encode(),
        422,
        "invalid",
        "filing_type",
    ),
    (
        "missing field",
        json.dumps({k: v for k, v in example().items() if k != "filer_code"}).encode(),
        422,
        "invalid",
        "filer_code",
    ),
    (
        "naive due_by",
        json.dumps(example(due_by="2026-12-01T10:00:00")).encode(),
        422,
        "invalid",
        "due_by",
    ),
    ("too large", json.dumps(_big_event()).encode(), 413, "too_large", None),
    ("unroutable", json.dumps(example(environment="production")).encode(), 422, "unroutable", None),
]


@pytest.mark.parametrize(
    ("name", "body", "status", "code", "loc"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS]
)
async def test_bad_input_gets_a_clear_json_error_and_stores_nothing(
    tmp_path, start_gateway, name, body, status, code, loc
):
    """Each bad request → its status, a JSON error naming the field, and no stored rows."""
    data = base_config(
        tmp_path,
        gateway={"max_body_bytes": 4096},
        routes=[{"environments": ["cert"], "adapters": ["outbox"]}],
    )
    gw = await start_gateway(data)
    async with gw.session.post(
        gw.url + "/v1/filings", data=body, headers={"Content-Type": "application/json"}
    ) as r:
        assert r.status == status
        payload = await r.json()
    assert payload["error"]["code"] == code
    assert payload["error"]["message"]
    if loc is not None:
        assert any(d["loc"].startswith(loc) for d in payload["error"]["details"]), payload
    assert count_rows(tmp_path) == 0
    assert count_rows(tmp_path, "audit") == 2  # only gateway.started and config.loaded


async def test_chunked_body_over_the_limit_is_413(tmp_path, start_gateway):
    """A body without Content-Length that grows past the limit is 413, not 400."""
    gw = await start_gateway(base_config(tmp_path, gateway={"max_body_bytes": 2048}))

    async def chunks():
        for _ in range(10):
            yield b" " * 1024

    json_type = {"Content-Type": "application/json"}
    async with gw.session.post(gw.url + "/v1/filings", data=chunks(), headers=json_type) as r:
        assert r.status == 413
        assert (await r.json())["error"]["code"] == "too_large"


async def test_unknown_route_and_method_are_json_errors(tmp_path, start_gateway):
    """404 and 405 from the router are JSON errors too."""
    gw = await start_gateway(base_config(tmp_path))
    status, body = await gw.get("/v1/nothing-here")
    assert status == 404 and body["error"]["code"] == "not_found"
    async with gw.session.delete(gw.url + "/v1/filings") as r:
        assert r.status == 405 and (await r.json())["error"]["code"] == "method_not_allowed"
    status, body = await gw.get("/v1/filings/fil_nope")
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_batch_is_one_transaction_with_per_item_results(tmp_path, start_gateway):
    """A batch stores its valid items and answers per item, in order."""
    gw = await start_gateway(base_config(tmp_path))
    items = [example(reference=f"B-{i}") for i in range(5)]
    items[2] = {"filing_type": "isf"}
    items.append(example(reference="B-0", idempotency_key="dup"))
    items.append(example(reference="B-0", idempotency_key="dup"))
    status, body = await gw.post("/v1/filings/batch", items)
    assert status == 200
    assert [r["http_status"] for r in body["results"]] == [202, 202, 422, 202, 202, 202, 200]
    assert body["results"][2]["error"]["details"][0]["loc"].startswith("[2].")
    assert body["results"][5]["id"] == body["results"][6]["id"]
    assert (body["accepted"], body["rejected"]) == (6, 1)
    assert count_rows(tmp_path) == 5
    status, body = await gw.post("/v1/filings/batch", [example()] * 1001)
    assert status == 422


async def test_listing_filters_and_cursor_pagination(tmp_path, start_gateway):
    """GET /v1/filings filters by type and reference and pages with a cursor."""
    gw = await start_gateway(base_config(tmp_path))
    for i in range(7):
        await gw.post("/v1/filings", example(reference=f"L-{i}"))
    await gw.post("/v1/filings", example("entry_summary", reference="ES-1"))
    seen, cursor = [], None
    while True:
        params = {"limit": "3", "filing_type": "isf"} | ({"cursor": cursor} if cursor else {})
        status, page = await gw.get("/v1/filings", params=params)
        assert status == 200
        seen += [f["reference"] for f in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"L-{i}" for i in reversed(range(7))]
    _, page = await gw.get("/v1/filings", params={"reference": "ES-1"})
    assert [f["filing_type"] for f in page["items"]] == ["entry_summary"]
    for bad in (
        {"state": "lost"},
        {"limit": "0"},
        {"since": "yesterday"},
        {"cursor": "zzz"},
        {"colour": "red"},
    ):
        status, body = await gw.get("/v1/filings", params=bad)
        assert status == 422, bad
        assert body["error"]["details"][0]["loc"].startswith("query.")


def _auth_config(tmp_path):
    def sha(s: str) -> str:
        return hashlib.sha256(s.encode()).hexdigest()

    return base_config(
        tmp_path,
        auth={
            "mode": "token",
            "tokens": {
                "tms": {"sha256": sha("tms-secret"), "scopes": ["submit", "read"]},
                "ops": {"sha256": sha("ops-secret"), "scopes": ["read", "operate"]},
            },
        },
    )


async def test_bearer_tokens_and_scopes(tmp_path, start_gateway):
    """No token → 401, wrong token → 401, missing scope → 403; the right token works."""
    gw = await start_gateway(_auth_config(tmp_path))
    s, b = await gw.post("/v1/filings", example())
    assert s == 401 and b["error"]["code"] == "unauthorized"
    s, _ = await gw.post("/v1/filings", example(), headers={"Authorization": "Bearer nope"})
    assert s == 401
    s, b = await gw.post("/v1/filings", example(), headers={"Authorization": "Bearer ops-secret"})
    assert s == 403 and b["error"]["code"] == "forbidden"
    s, b = await gw.post("/v1/filings", example(), headers={"Authorization": "Bearer tms-secret"})
    assert s == 202
    s, _ = await gw.post(
        f"/v1/filings/{b['id']}/cancel", headers={"Authorization": "Bearer tms-secret"}
    )
    assert s == 403
    s, v = await gw.get(f"/v1/filings/{b['id']}", headers={"Authorization": "Bearer ops-secret"})
    assert s == 200 and v["source"] == "api:tms"
    assert (await gw.get("/healthz"))[0] == 200
    assert count_rows(tmp_path) == 1


async def test_auth_none_refuses_a_non_loopback_listener(tmp_path, start_gateway):
    """[auth] mode none on 0.0.0.0 → the gateway refuses to start."""
    with pytest.raises(errors.ConfigError, match="loopback"):
        await start_gateway(base_config(tmp_path, gateway={"listen": "0.0.0.0:0"}))


async def test_health_readiness_and_openapi(tmp_path, start_gateway):
    """healthz/readyz answer; /openapi.json lists every API route with error schemas."""
    gw = await start_gateway(base_config(tmp_path))
    assert (await gw.get("/healthz")) == (200, {"status": "ok"})
    status, ready = await gw.get("/readyz")
    assert status == 200 and ready["checks"]["store"] == "ok"
    status, spec = await gw.get("/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    from gateway.api.app import ROUTES

    for method, path, _, _ in ROUTES:
        assert method.lower() in spec["paths"][path], path
    assert "FilingEvent" in spec["components"]["schemas"]
    assert "422" in spec["paths"]["/v1/filings"]["post"]["responses"]


async def test_request_id_is_returned_and_recorded(tmp_path, start_gateway):
    """X-Request-ID comes back in the response and lands in the filing's audit rows."""
    gw = await start_gateway(base_config(tmp_path))
    async with gw.session.post(
        gw.url + "/v1/filings", json=example(), headers={"X-Request-ID": "req-42"}
    ) as r:
        assert r.headers["X-Request-ID"] == "req-42"
        filing_id = (await r.json())["id"]
    _, hist = await gw.get(f"/v1/filings/{filing_id}/history")
    accepted = [e for e in hist["events"] if e["event"] == "filing.accepted"]
    assert accepted[0]["details"]["request_id"] == "req-42"


async def test_lone_surrogates_and_broken_callback_urls_are_client_errors(tmp_path, start_gateway):
    """Found by schemathesis: an unpaired \\ud800 is 400 and a URL with '[' is 422, not 500."""
    gw = await start_gateway(base_config(tmp_path))
    body = json.dumps(example()).replace('"payload": {', '"payload": {"x": "\\ud800", ')
    async with gw.session.post(
        gw.url + "/v1/filings", data=body.encode(), headers={"Content-Type": "application/json"}
    ) as r:
        assert r.status == 400
        assert "surrogate" in (await r.json())["error"]["message"]
    status, err = await gw.post("/v1/filings", example(callback_url="https://g[x/"))
    assert status == 422
    assert err["error"]["code"] == "callback_refused"
    assert count_rows(tmp_path) == 0


async def test_every_listing_refuses_a_query_parameter_it_does_not_take(tmp_path, start_gateway):
    """A typo in a filter never passes silently as "no filter": 422 naming ``query.<name>``,
    on every GET route that takes query parameters (one check, ``inputs.only_params``)."""
    gw = await start_gateway(base_config(tmp_path))
    routes = [
        "/v1/filings",
        "/v1/outages",
        "/v1/overview",
        "/v1/rejected-events",
        "/v1/pauses",
        "/v1/records",
    ]
    for path in routes:
        status, body = await gw.get(path, params={"colour": "red"})
        assert status == 422, path
        assert body["error"]["details"][0]["loc"] == "query.colour", path
