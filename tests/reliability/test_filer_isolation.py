"""Issue 22: a token scoped to filer codes reads and changes nothing of another filer,
through ANY route. The routes are enumerated from the running app's router, so a new route
is covered at once, and one that ``auth.FILER_SCOPE`` does not classify fails the test."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

import anyio
import pytest

from gateway.api import auth
from gateway.cli import main as cli
from gateway.clock import ManualClock
from tests.conftest import base_config, example

FILER_A, FILER_B = "AAA1", "BBB2"
SECRETS = {
    "admin": "admin-secret-0123456789",
    "a": "filer-a-secret-0123456789",
    "prod": "production-only-secret-0123456789",
}
MISSING = "fil_01HZZZZZZZZZZZZZZZZZZZZZZZ"


def _token(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "sha256": hashlib.sha256(SECRETS[name].encode()).hexdigest(),
        "scopes": ["submit", "read", "operate"],
        **extra,
    }


@pytest.fixture
async def two_filers(tmp_path, store_url, start_gateway, receiver):
    """Three dead filings of filer A and three of filer B (interleaved), on each store."""
    receiver.script = [400] * 100  # every send is refused for good: each filing goes dead
    cfg = base_config(
        tmp_path,
        gateway={"store": store_url},
        auth={
            "mode": "token",
            "tokens": {
                "admin": _token("admin"),
                "a": _token("a", filer_codes=[FILER_A]),
                "prod": _token("prod", environments=["production"]),
            },
        },
        adapters={"ace": {"type": "http", "url": receiver.url, "timeout": "5s"}},
        routes=[{"filing_types": ["*"], "adapters": ["ace"]}],
    )
    gw = await start_gateway(cfg)
    ids: dict[str, list[str]] = {FILER_A: [], FILER_B: []}
    for i in range(3):
        for filer in (FILER_A, FILER_B):
            status, body = await gw.post(
                "/v1/filings",
                example(reference=f"REF-{filer}-{i}", filer_code=filer),
                headers=_auth("admin"),
            )
            assert status == 202, body
            ids[filer].append(body["id"])
    status, body = await gw.post(
        "/v1/filings",
        example(reference="REF-PROD", filer_code=FILER_A, environment="production"),
        headers=_auth("admin"),
    )
    assert status == 202, body
    ids[FILER_A].append(body["id"])
    for fid in ids[FILER_A] + ids[FILER_B]:
        await _wait_dead(gw, fid)
    return gw, ids


def _auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS[name]}"}


async def _wait_dead(gw: Any, fid: str) -> None:
    await _wait_status(gw, fid, "dead")


async def _wait_status(gw: Any, fid: str, want: str) -> None:
    with anyio.move_on_after(60):
        while True:
            _, body = await gw.get(f"/v1/filings/{fid}", headers=_auth("admin"))
            if body["status"] == want:
                return
            await anyio.sleep(0.02)
    raise AssertionError(f"{fid} never went {want}: {body}")


async def _call(
    gw: Any, method: str, path: str, body: Any = None, token: str = "a"
) -> tuple[int, Any, str]:
    async with gw.session.request(method, gw.url + path, json=body, headers=_auth(token)) as r:
        text = await r.text()
        data = await r.json() if r.content_type == "application/json" else None
        return r.status, data, text


def _same_shape(body: dict[str, Any], fid: str) -> str:
    """A 404 body with the id written as ID and the request id dropped."""
    body = {k: v for k, v in body.items() if k != "request_id"}
    err = {k: v for k, v in body["error"].items() if k != "request_id"}
    return repr({**body, "error": err}).replace(fid, "ID")


def _concrete(path: str, fid: str) -> str:
    return re.sub(r"\{[^}]+\}", fid, path)


async def _narrowed(gw: Any, ids: dict[str, list[str]], method: str, path: str) -> None:
    """The route-by-route checks of the routes that narrow their own answer."""
    a_ids, b_ids = set(ids[FILER_A]), set(ids[FILER_B])
    b = ids[FILER_B][0]
    route = (method, path)
    if route == ("POST", "/v1/filings"):
        status, body, _ = await _call(gw, method, path, example(filer_code=FILER_B))
        assert status == 403 and body["error"]["details"]["loc"] == "filer_code", body
    elif route == ("POST", "/v1/filings/batch"):
        events = [example(filer_code=FILER_B, reference="BATCH-B"), example(filer_code=FILER_A)]
        status, body, _ = await _call(gw, method, path, events)
        assert status == 200, body
        assert [r["http_status"] for r in body["results"]] == [403, 202], body
    elif route == ("GET", "/v1/filings"):
        seen: list[str] = []
        cursor = ""
        while True:  # pagination stays right: one page of one at a time, filtered in SQL
            status, body, _ = await _call(gw, method, f"{path}?limit=1{cursor}")
            assert status == 200, body
            seen += [item["id"] for item in body["items"]]
            if not body["next_cursor"]:
                break
            cursor = f"&cursor={body['next_cursor']}"
        assert not set(seen) & b_ids and a_ids <= set(seen), seen
        status, body, _ = await _call(gw, method, f"{path}?filer_code={FILER_B}")
        assert (status, body["items"]) == (200, []), body
    elif route in (("GET", "/v1/acks"), ("GET", "/v1/callbacks")):
        status, body, _ = await _call(gw, method, f"{path}?filing_id={b}")
        assert status == 404, body
        status, body, _ = await _call(gw, method, path)
        assert status == 403, body  # a scoped token names one of its filings
        status, body, _ = await _call(gw, method, f"{path}?filing_id={ids[FILER_A][0]}")
        assert status == 200, body
    elif route == ("POST", "/v1/callbacks/retry"):
        status, body, _ = await _call(gw, method, path, {"filing_id": b, "dry_run": True})
        assert status == 404, body
        status, body, _ = await _call(gw, method, path, {"dry_run": True})
        assert status == 403, body
    elif route in (("POST", "/v1/deliveries/retry"), ("POST", "/v1/deliveries/cancel")):
        status, body, _ = await _call(gw, method, path, {"dry_run": True, "limit": 500})
        assert status == 200, body
        touched = {d["filing_id"] for d in body["deliveries"]}
        # all of A's (the first may be in flight again: the FILING checks retried it)
        assert a_ids - {ids[FILER_A][0]} <= touched <= a_ids, body
        assert body["matched"] == len(touched), body
    elif path.startswith("/v1/records"):
        await _records_route(gw, ids, method, path)
    elif path.startswith("/ui/records"):
        await _records_pages(gw, ids, path)
    else:
        raise AssertionError(f"{method} {path} narrows its answer but has no check here")


async def _records_route(gw: Any, ids: dict[str, list[str]], method: str, path: str) -> None:
    """The records routes (a filing live or archived): search finds A's only, a B id is
    answered word for word as a missing one, A's own are served."""
    a_ids, b_ids = set(ids[FILER_A]), set(ids[FILER_B])
    if (method, path) == ("GET", "/v1/records"):
        seen: list[str] = []
        cursor = ""
        while True:
            status, body, _ = await _call(gw, method, f"{path}?limit=1{cursor}")
            assert status == 200, body
            seen += [item["id"] for item in body["items"]]
            if not body["next_cursor"]:
                break
            cursor = f"&cursor={body['next_cursor']}"
        assert not set(seen) & b_ids and a_ids <= set(seen), seen
        for query in (f"filer_code={FILER_B}", f"reference=REF-{FILER_B}-0"):
            status, body, _ = await _call(gw, method, f"{path}?{query}")
            assert (status, body["items"]) == (200, []), body
        return
    body = {"reason": "a scoped token tries"} if method == "POST" else None
    b, a = ids[FILER_B][0], ids[FILER_A][0]
    status, got, _ = await _call(gw, method, _concrete(path, b), body)
    m_status, missing, _ = await _call(gw, method, _concrete(path, MISSING), body)
    assert (status, m_status) == (404, 404), (method, path, got)
    assert _same_shape(got, b) == _same_shape(missing, MISSING), (got, missing)
    status, _, _ = await _call(gw, method, _concrete(path, a), body)
    # its own: served (a live filing is not restored: 409, not hidden)
    assert status == (409 if method == "POST" else 200), (method, path, status)


async def _records_pages(gw: Any, ids: dict[str, list[str]], path: str) -> None:
    """The dashboard's records fragments: results hold A's ids only; B's record page is a
    missing one's 404, word for word; A's own is served."""
    if path == "/ui/records/panel":
        for query in ("", f"?filer_code={FILER_B}", f"?reference=REF-{FILER_B}-0"):
            status, _, text = await _call(gw, "GET", path + query)
            assert status == 200 and not any(b in text for b in ids[FILER_B]), text[:300]
            assert f"REF-{FILER_B}" not in text, text[:300]
            if not query:
                assert all(a in text for a in ids[FILER_A]), text[:300]
        return
    b, a = ids[FILER_B][0], ids[FILER_A][0]
    status, got, _ = await _call(gw, "GET", _concrete(path, b))
    m_status, missing, _ = await _call(gw, "GET", _concrete(path, MISSING))
    assert (status, m_status) == (404, 404), (path, got)
    assert _same_shape(got, b) == _same_shape(missing, MISSING), (got, missing)
    status, _, text = await _call(gw, "GET", _concrete(path, a))
    assert status == 200 and f"REF-{FILER_A}-0" in text, (path, status)


async def test_no_token_reads_or_changes_another_filers_filings_through_any_route(
    two_filers, figure
):
    """Every route of the app, called by a token scoped to filer A against filer B's ids,
    answers 404 (word for word a missing id's), 403 (a route spanning every filer), or a
    list without B; B's filings are unchanged afterwards."""
    gw, ids = two_filers
    b, a = ids[FILER_B][0], ids[FILER_A][0]
    routes = sorted(
        {
            (route.method, route.resource.canonical)
            for route in gw.gateway.app.router.routes()
            if route.method != "HEAD" and route.resource is not None
        }
    )
    unclassified = [r for r in routes if r not in auth.FILER_SCOPE]
    assert not unclassified, f"classify these routes in auth.FILER_SCOPE: {unclassified}"
    kinds: dict[str, int] = {}
    for method, path in routes:
        kind = auth.FILER_SCOPE[(method, path)]
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind is auth.FilerScope.FILING:
            status, body, _ = await _call(gw, method, _concrete(path, b))
            m_status, missing, _ = await _call(gw, method, _concrete(path, MISSING))
            assert (status, m_status) == (404, 404), (method, path, body)
            assert _same_shape(body, b) == _same_shape(missing, MISSING), (body, missing)
            status, _, _ = await _call(gw, method, _concrete(path, a))
            assert status not in (403, 404), (method, path, status)  # its own: served
        elif kind is auth.FilerScope.UNSCOPED:
            status, body, text = await _call(gw, method, _concrete(path, b), {})
            assert status == 403 and b not in text, (method, path, status, text[:200])
        elif kind in (auth.FilerScope.SHARED, auth.FilerScope.PUBLIC):
            status, _, text = await _call(gw, method, _concrete(path, b))
            assert f"REF-{FILER_B}" not in text, (method, path)
        else:
            await _narrowed(gw, ids, method, path)
    # nothing of B changed: still dead, no action by token a in its history
    for fid in ids[FILER_B]:
        _, view = await gw.get(f"/v1/filings/{fid}", headers=_auth("admin"))
        assert view["status"] == "dead", view
        _, hist = await gw.get(f"/v1/filings/{fid}/history", headers=_auth("admin"))
        assert all(e["actor"] != "a" for e in hist["events"]), hist
    _, listed = await gw.get(f"/v1/filings?filer_code={FILER_B}", headers=_auth("admin"))
    assert {i["id"] for i in listed["items"]} == set(ids[FILER_B])  # no B filing from "a"
    figure(
        "row22",
        f"{len(routes)} routes enumerated from the router, each classified "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        + "; token scoped to filer A saw and changed nothing of filer B",
    )


async def test_archived_records_of_another_filer_stay_hidden(tmp_path, store_url, start_gateway):
    """Filings of A and B archived by the mover: a token scoped to A searches, shows and
    restores A's records only; B's are 404 word for word as a missing id, and stay archived."""
    clock = ManualClock()
    section = {"enabled": True, "dir": str(tmp_path / "records"), "interval": "1h"}
    cfg = base_config(
        tmp_path,
        gateway={"store": store_url},
        auth={
            "mode": "token",
            "tokens": {"admin": _token("admin"), "a": _token("a", filer_codes=[FILER_A])},
        },
        records=section,
    )
    gw = await start_gateway(cfg, clock=clock)
    ids: dict[str, list[str]] = {FILER_A: [], FILER_B: []}
    for i in range(2):
        for filer in (FILER_A, FILER_B):
            event = example(reference=f"REF-{filer}-{i}", filer_code=filer)
            status, body = await gw.post("/v1/filings", event, headers=_auth("admin"))
            assert status == 202, body
            ids[filer].append(body["id"])
    for fid in ids[FILER_A] + ids[FILER_B]:
        await _wait_status(gw, fid, "delivered")
    clock.advance(timedelta(days=30).total_seconds())
    assert await gw.gateway.mover.round() == 4
    status, body, _ = await _call(gw, "GET", "/v1/records?limit=500")
    assert status == 200 and {i["id"] for i in body["items"]} == set(ids[FILER_A]), body
    assert {i["where"] for i in body["items"]} == {"archive"}, body
    for query in (f"filer_code={FILER_B}", f"reference=REF-{FILER_B}-1"):
        status, body, _ = await _call(gw, "GET", f"/v1/records?{query}")
        assert (status, body["items"]) == (200, []), body
    b = ids[FILER_B][0]
    for method, path, body in (
        ("GET", "/v1/records/{}", None),
        ("POST", "/v1/records/{}/restore", {"reason": "a scoped token tries"}),
    ):
        status, got, text = await _call(gw, method, path.format(b), body)
        m_status, missing, _ = await _call(gw, method, path.format(MISSING), body)
        assert (status, m_status) == (404, 404) and f"REF-{FILER_B}" not in text, got
        assert _same_shape(got, b) == _same_shape(missing, MISSING), (got, missing)
    status, got, _ = await _call(gw, "GET", f"/v1/records/{b}", token="admin")
    assert status == 200 and got["where"] == "archive", got  # B's is still archived
    a = ids[FILER_A][0]
    status, got, _ = await _call(gw, "GET", f"/v1/records/{a}")
    assert status == 200 and got["record"]["filing"]["reference"] == f"REF-{FILER_A}-0", got
    status, got, _ = await _call(gw, "POST", f"/v1/records/{a}/restore", {"reason": "CBP"})
    assert status == 200, got


async def test_a_scoped_tokens_own_actions_are_audited_under_its_name(two_filers):
    """Every audit row of a scoped token's action names the token's principal."""
    gw, ids = two_filers
    a = ids[FILER_A][0]
    status, body, _ = await _call(gw, "POST", f"/v1/filings/{a}/retry")
    assert status == 200, body
    status, body, _ = await _call(gw, "POST", "/v1/filings", example(filer_code=FILER_A))
    assert status == 202, body
    _, hist = await gw.get(f"/v1/filings/{a}/history", headers=_auth("admin"))
    retried = [e for e in hist["events"] if e["event"] == "delivery.retried"]
    assert retried and all(e["actor"] == "a" for e in retried), hist
    _, hist = await gw.get(f"/v1/filings/{body['id']}/history", headers=_auth("admin"))
    accepted = [e for e in hist["events"] if e["event"] in ("filing.accepted", "delivery.pending")]
    assert accepted and all(e["actor"] == "a" for e in accepted), hist


async def test_the_cli_in_remote_mode_honours_the_scope(two_filers, capsys):
    """`edi-gateway status|retry|list --token` with filer A's token: B's filing is not
    found (exit as for a missing id), and `list` shows only A's filings."""
    gw, ids = two_filers
    b = ids[FILER_B][0]

    def run(*argv: str) -> tuple[int, str]:
        code = cli.main([*argv, "--url", gw.url, "--token", SECRETS["a"], "--json"])
        return code, capsys.readouterr().out

    missing_code, _ = await anyio.to_thread.run_sync(run, "status", MISSING)
    code, out = await anyio.to_thread.run_sync(run, "status", b)
    assert code == missing_code != 0 and "REF-" not in out, out
    code, _ = await anyio.to_thread.run_sync(run, "retry", b)
    assert code == missing_code, code
    code, out = await anyio.to_thread.run_sync(run, "list", "--limit", "100")
    assert code == 0 and FILER_B not in out and FILER_A in out, out


async def test_a_token_limited_to_an_environment_sees_only_that_environment(two_filers):
    """environments = ["production"]: the cert filings are 404, the list and a bulk dry run
    hold the one production filing only, and a cert submit is 403 naming environment."""
    gw, ids = two_filers
    prod = ids[FILER_A][-1]
    status, body, _ = await _call(gw, "GET", f"/v1/filings/{ids[FILER_A][0]}", token="prod")
    assert status == 404, body
    status, body, _ = await _call(gw, "GET", f"/v1/filings/{prod}", token="prod")
    assert status == 200, body
    status, body, _ = await _call(gw, "GET", "/v1/filings", token="prod")
    assert [i["id"] for i in body["items"]] == [prod], body
    status, body, _ = await _call(
        gw, "POST", "/v1/deliveries/retry", {"dry_run": True}, token="prod"
    )
    assert {d["filing_id"] for d in body["deliveries"]} == {prod}, body
    status, body, _ = await _call(gw, "POST", "/v1/filings", example(), token="prod")
    assert status == 403 and body["error"]["details"]["loc"] == "environment", body
