"""The HTTP edge (issue 16): cross-site and DNS-rebinding requests refused in every auth
mode, and bad bytes, deep JSON, odd digits and control characters answered 4xx naming the
field, never 5xx; nothing is stored or changed by a refused request."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from typing import Any

import pytest

from tests.conftest import base_config, example

EVIL = "https://evil.example"


def rows(tmp_path, sql: str = "SELECT COUNT(*) FROM filings") -> int:
    with sqlite3.connect(tmp_path / "gateway.db") as conn:
        return int(conn.execute(sql).fetchone()[0])


def audit_events(tmp_path, event: str) -> int:
    return rows(tmp_path, f"SELECT COUNT(*) FROM audit WHERE event = '{event}'")


def token_config(tmp_path, **sections: Any) -> dict[str, Any]:
    return base_config(
        tmp_path,
        auth={
            "mode": "token",
            "tokens": {
                "ops": {
                    "sha256": hashlib.sha256(b"ops-secret").hexdigest(),
                    "scopes": ["submit", "read", "operate"],
                }
            },
        },
        **sections,
    )


async def raw(port: int, head: bytes, body: bytes = b"") -> tuple[int, dict[str, str], Any]:
    """One HTTP/1.1 request written byte for byte (clients refuse to send non-UTF-8)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + b"Connection: close\r\n\r\n" + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    header_block, _, payload = data.partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    is_json = headers.get("Content-Type", "").startswith("application/json")
    return int(lines[0].split()[1]), headers, json.loads(payload) if is_json else payload


@pytest.mark.parametrize("mode", ["none", "token"])
async def test_a_cross_site_form_post_is_refused_and_changes_nothing(tmp_path, start_gateway, mode):
    """Origin evil.example cancelling a filing, or a text/plain body submitting one: 403/415,
    and the filing, the row count and the audit trail stay as they were."""
    data = base_config(tmp_path) if mode == "none" else token_config(tmp_path)
    auth = {} if mode == "none" else {"Authorization": "Bearer ops-secret"}
    gw = await start_gateway(data)
    status, filing = await gw.post("/v1/filings", example(), headers=auth)
    assert status == 202
    form = {**auth, "Origin": EVIL, "Content-Type": "application/x-www-form-urlencoded"}
    async with gw.session.post(
        f"{gw.url}/v1/filings/{filing['id']}/cancel", data=b"x=1", headers=form
    ) as r:
        body = await r.json()
        assert r.status == 403 and body["error"]["code"] == "origin_refused"
        assert body["error"]["details"][0]["loc"] == "header.Origin"
    text = {**auth, "Content-Type": "text/plain"}
    for path, payload in (
        ("/v1/filings", example(reference="SMUGGLED")),
        ("/v1/deliveries/retry", {"reason": "x"}),
        (f"/v1/filings/{filing['id']}/cancel", {}),
    ):
        async with gw.session.post(gw.url + path, data=json.dumps(payload), headers=text) as r:
            body = await r.json()
            assert r.status == 415, path
            assert body["error"]["details"][0]["loc"] == "header.Content-Type"
    assert rows(tmp_path) == 1
    assert audit_events(tmp_path, "filing.cancelled") == 0
    assert audit_events(tmp_path, "delivery.cancelled") == 0


@pytest.mark.parametrize("mode", ["none", "token"])
async def test_a_foreign_host_is_refused_so_dns_rebinding_reads_nothing(
    tmp_path, start_gateway, mode
):
    """Host: evil.example (a rebound name) → 403 naming Host; the gateway's own names pass."""
    extra = {"gateway": {"allowed_hosts": ["gw.example.com"]}}
    data = base_config(tmp_path, **extra) if mode == "none" else token_config(tmp_path, **extra)
    auth = {} if mode == "none" else {"Authorization": "Bearer ops-secret"}
    gw = await start_gateway(data)
    await gw.post("/v1/filings", example(), headers=auth)
    for host in (f"evil.example:{gw.gateway.port}", "evil.example", "[::2]", "10.0.0.1:80"):
        status, body = await gw.get("/v1/filings", headers={**auth, "Host": host})
        assert status == 403, host
        assert body["error"]["details"][0]["loc"] == "header.Host"
        assert "items" not in body
    for host in (
        f"localhost:{gw.gateway.port}",
        "localhost:18080",  # a port published by Docker or a proxy
        "127.0.0.1",
        f"[::1]:{gw.gateway.port}",
        "gw.example.com:443",
        "GW.example.com",
    ):
        status, body = await gw.get("/v1/filings", headers={**auth, "Host": host})
        assert status == 200 and len(body["items"]) == 1, host


async def test_same_origin_and_allowed_origins_pass_null_and_others_do_not(tmp_path, start_gateway):
    """The dashboard's own origin and [gateway] allowed_origins may write; Origin null may not."""
    gw = await start_gateway(
        base_config(tmp_path, gateway={"allowed_origins": ["https://ops.example.com"]})
    )
    own = f"http://127.0.0.1:{gw.gateway.port}"
    for n, origin in enumerate((own, "https://ops.example.com")):
        status, _ = await gw.post(
            "/v1/filings", example(reference=f"O-{n}"), headers={"Origin": origin}
        )
        assert status == 202, origin
    for origin in ("null", EVIL, f"http://localhost:{gw.gateway.port + 1}", "https://ops.example"):
        status, body = await gw.post(
            "/v1/filings", example(reference="NO"), headers={"Origin": origin}
        )
        assert status == 403 and body["error"]["code"] == "origin_refused", origin
    assert rows(tmp_path) == 2


async def test_a_bare_post_without_a_body_still_works(tmp_path, start_gateway):
    """Retry and cancel need no body: clients that label it octet-stream (or not) get through."""
    gw = await start_gateway(base_config(tmp_path))
    _, filing = await gw.post("/v1/filings", example())
    async with gw.session.post(f"{gw.url}/v1/filings/{filing['id']}/retry") as r:
        assert r.status in (200, 409), await r.text()
    status, _, body = await raw(
        gw.gateway.port,
        f"POST /v1/filings/{filing['id']}/cancel HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Length: 0\r\n".encode(),
    )
    assert status in (200, 409), body


@pytest.mark.parametrize("header", ["Authorization", "Idempotency-Key", "X-Request-ID"])
@pytest.mark.parametrize("mode", ["none", "token"])
async def test_non_utf8_header_bytes_are_400_naming_the_header(
    tmp_path, start_gateway, header, mode
):
    """A 0xFF byte in Authorization, Idempotency-Key or X-Request-ID → 400 naming it, no row."""
    gw = await start_gateway(base_config(tmp_path) if mode == "none" else token_config(tmp_path))
    event = json.dumps(example()).encode()
    auth = (
        b""
        if header == "Authorization" or mode == "none"
        else b"Authorization: Bearer ops-secret\r\n"
    )
    status, headers, body = await raw(
        gw.gateway.port,
        b"POST /v1/filings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + auth
        + header.encode()
        + b": Bearer \xff\xfe-k\r\n"
        + f"Content-Length: {len(event)}\r\n".encode(),
        event,
    )
    assert status == 400, body
    assert body["error"]["details"][0]["loc"] == f"header.{header}"
    assert headers["X-Request-ID"].isascii()
    assert rows(tmp_path) == 0


async def test_control_characters_in_headers_are_400(tmp_path, start_gateway):
    """A tab in Idempotency-Key → 400 naming it (NUL, ESC, DEL: aiohttp's parser answers
    400 before the app); nothing stored."""
    gw = await start_gateway(base_config(tmp_path))
    event = json.dumps(example()).encode()
    for value in (b"k\ty", b"k\x00y", b"k\x1by", b"k\x7f"):
        status, _, body = await raw(
            gw.gateway.port,
            b"POST /v1/filings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + b"Idempotency-Key: "
            + value
            + f"\r\nContent-Length: {len(event)}\r\n".encode(),
            event,
        )
        assert status == 400, (value, body)
        if value == b"k\ty":
            assert body["error"]["details"][0]["loc"] == "header.Idempotency-Key"
    assert rows(tmp_path) == 0


async def test_lower_case_bearer_scheme_is_accepted(tmp_path, start_gateway):
    """RFC 9110: `bearer` and `BEARER` are the same scheme as `Bearer`."""
    gw = await start_gateway(token_config(tmp_path))
    for n, scheme in enumerate(("bearer", "BEARER", "Bearer")):
        status, _ = await gw.post(
            "/v1/filings",
            example(reference=f"B-{n}"),
            headers={"Authorization": f"{scheme} ops-secret"},
        )
        assert status == 202, scheme
    status, _ = await gw.post("/v1/filings", example(), headers={"Authorization": "Basic x"})
    assert status == 401
    assert rows(tmp_path) == 3


async def test_json_nested_100000_deep_is_400_not_a_recursion_error(tmp_path, start_gateway):
    """100,000-deep JSON → 400 on every JSON route; deep metadata → 400/422 naming it."""
    gw = await start_gateway(base_config(tmp_path))
    deep = b"[" * 100_000 + b"]" * 100_000
    for path in ("/v1/filings", "/v1/filings/batch", "/v1/acks", "/v1/outages"):
        async with gw.session.post(
            gw.url + path, data=deep, headers={"Content-Type": "application/json"}
        ) as r:
            body = await r.json()
            assert r.status == 400, (path, body)
            assert "deeper than 64" in body["error"]["message"]
    nested: Any = "leaf"
    for _ in range(700):
        nested = {"n": nested}
    status, body = await gw.post("/v1/filings", example(metadata={"deep": nested}))
    assert status == 400, body
    nested = "leaf"
    for _ in range(63):  # metadata 63 deep in a body 64 deep: past the field's limit only
        nested = {"n": nested}
    status, body = await gw.post("/v1/filings", example(metadata=nested))
    assert status == 422 and body["error"]["details"][0]["loc"] == "metadata"
    assert rows(tmp_path) == 0
    status, _ = await gw.post("/v1/filings", example(metadata=nested["n"]))
    assert status == 202
    assert rows(tmp_path) == 1


async def test_query_integers_take_ascii_digits_only(tmp_path, start_gateway):
    """?limit=² and ?upcoming=² (digits to isdigit, not to int) → 422 naming the parameter."""
    gw = await start_gateway(base_config(tmp_path))
    for path, name in (
        ("/v1/filings", "limit"),
        ("/v1/outages", "upcoming"),
        ("/v1/acks", "limit"),
        ("/v1/rejected-events", "limit"),
        ("/v1/callbacks", "limit"),
    ):
        for value in ("²", "١٢", "1e3", "-1", " 5"):
            status, body = await gw.get(path, params={name: value})
            assert status == 422, (path, value, body)
            assert body["error"]["details"][0]["loc"] == f"query.{name}"
        status, body = await gw.get(path, params={name: "5"})
        assert status == 200, (path, body)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("callback_url", "https://hooks.example.com\\@127.0.0.1/x"),
        ("callback_url", "https://hooks.example.com/a\x00b"),
        ("reference", "REF\r\nX-Injected: 1"),
        ("idempotency_key", "key\nnext"),
        ("ordering_key", "ok\x00"),
        ("content_type", "application/edi-x12;\r\nX-Injected: 1"),
        ("content_type", "application/edi-x12; q=\r"),
        ("metadata", {"x-head\r\ner": "v"}),
        ("metadata", {"trace": "a\x7fb"}),
    ],
)
async def test_control_characters_and_backslashes_are_refused_at_intake(
    tmp_path, start_gateway, field, value
):
    """Fields that become headers, file names or queue properties: CR/LF/NUL/DEL → 422."""
    gw = await start_gateway(base_config(tmp_path))
    event = example(**{field: value})
    if field == "content_type":
        event["payload"] = "ISA*00*~"
    status, body = await gw.post("/v1/filings", event)
    assert status == 422, body
    assert body["error"]["details"][0]["loc"] == field
    assert rows(tmp_path) == 0


async def test_a_path_parameter_with_control_characters_names_no_resource(tmp_path, start_gateway):
    """/v1/filings/%01x and /ui/static/%00 → 404 naming the path parameter, not a 500."""
    gw = await start_gateway(base_config(tmp_path))
    for path, loc in (
        ("/v1/filings/%01x", "path.id"),
        ("/v1/filings/a%7F/history", "path.id"),
        ("/ui/static/%00", "path.name"),
    ):
        async with gw.session.get(gw.url + path) as r:
            body = await r.json()
            assert r.status == 404, (path, body)
            assert body["error"]["details"][0]["loc"] == loc


async def test_the_filing_page_shell_says_no_such_filing_for_a_control_character_id(
    tmp_path, start_gateway
):
    """/ui/filings/%01x answers 200 like any unknown id (the page's contract), no 5xx."""
    gw = await start_gateway(base_config(tmp_path))
    async with gw.session.get(gw.url + "/ui/filings/%01x") as r:
        assert r.status == 200
        assert "no filing" in await r.text()


async def test_an_http10_probe_without_host_is_served_but_an_empty_host_is_not(
    tmp_path, start_gateway
):
    """No Host header (HTTP/1.0 health checks; never a browser) → 200; `Host:` empty → 403."""
    gw = await start_gateway(base_config(tmp_path))
    status, _, body = await raw(gw.gateway.port, b"GET /readyz HTTP/1.0\r\n")
    assert status == 200, body
    status, _, body = await raw(gw.gateway.port, b"GET /readyz HTTP/1.1\r\nHost: \r\n")
    assert status == 403 and body["error"]["details"][0]["loc"] == "header.Host"


async def test_a_body_without_a_type_is_415_but_octet_stream_is_taken(tmp_path, start_gateway):
    """A body with no Content-Type (a no-cors fetch of a Blob) → 415; application/octet-stream
    (what HTTP libraries label raw bytes with; browsers preflight it) is read as before."""
    gw = await start_gateway(base_config(tmp_path))
    event = json.dumps(example()).encode()
    status, _, body = await raw(
        gw.gateway.port,
        b"POST /v1/filings HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Content-Length: {len(event)}\r\n".encode(),
        event,
    )
    assert status == 415 and body["error"]["details"][0]["loc"] == "header.Content-Type"
    assert rows(tmp_path) == 0
    async with gw.session.post(gw.url + "/v1/filings", data=event) as r:  # octet-stream
        assert r.status == 202, await r.text()
    assert rows(tmp_path) == 1


async def test_an_outage_time_given_as_a_number_is_422_not_a_unix_time(tmp_path, start_gateway):
    """starts_at -72382 (schemathesis found it accepted) → 422 naming starts_at; none stored."""
    gw = await start_gateway(base_config(tmp_path))
    for bad in (-72382, "123", 1.5):
        status, body = await gw.post(
            "/v1/outages", {"environment": "production", "starts_at": bad, "reason": "x"}
        )
        assert status == 422 and body["error"]["details"][0]["loc"] == "starts_at", body
    assert (await gw.get("/v1/outages"))[1]["outages"] == []
