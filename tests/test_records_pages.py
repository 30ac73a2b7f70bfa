"""The dashboard's records pages (issue 20) on a gateway running on loopback, on SQLite and
PostgreSQL: the search fragment over live and archive (paginated by the API's cursor, each
row linking to its record), a record's fragment (history, the payload escaped, where it
lives), a token limited to one filer, bad input, and the shells with auth off."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from gateway.clock import ManualClock
from tests.conftest import base_config, example

FILER_A, FILER_B = "AAA1", "BBB2"
SECRETS = {"admin": "admin-secret-0123456789", "a": "filer-a-secret-0123456789"}
MISSING = "fil_01HZZZZZZZZZZZZZZZZZZZZZZZ"
SCRIPT = '<script>alert("owned")</script> & Co'


def _token(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "sha256": hashlib.sha256(SECRETS[name].encode()).hexdigest(),
        "scopes": ["submit", "read", "operate"],
        **extra,
    }


def pages_config(tmp_path: Path, store_url: str, *, auth: bool = True) -> dict[str, Any]:
    section = {"enabled": True, "dir": str(tmp_path / "records"), "interval": "1h"}
    tokens = {"admin": _token("admin"), "a": _token("a", filer_codes=[FILER_A])}
    return base_config(
        tmp_path,
        gateway={"store": store_url},
        records=section,
        auth={"mode": "token", "tokens": tokens} if auth else {"mode": "none"},
    )


def _auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS[name]}"}


def event(ref: str, filer: str, bol: str, seller: str = "Shenzhen Widgets Co") -> dict[str, Any]:
    e = example(reference=ref, filer_code=filer)
    e["payload"]["bill_of_lading"] = bol
    e["payload"]["seller"]["name"] = seller
    return e


async def archived_and_live(gw: Any, clock: ManualClock, headers: dict[str, str]) -> dict[str, str]:
    """Three filings archived by the gateway's mover (A's holds a <script>), one live; by
    reference."""
    ids: dict[str, str] = {}
    for ref, filer, bol, seller in (
        ("PAGE-A-1", FILER_A, "MAEU000000001", SCRIPT),
        ("PAGE-A-2", FILER_A, "MAEU000000002", "Plain Co"),
        ("PAGE-B-1", FILER_B, "MAEU000000003", "Other Co"),
    ):
        status, body = await gw.post("/v1/filings", event(ref, filer, bol, seller), headers=headers)
        assert status == 202, body
        ids[ref] = body["id"]
    for fid in ids.values():
        await wait_for(gw, fid, "delivered", headers)
    clock.advance(timedelta(days=30).total_seconds())
    assert await gw.gateway.mover.round() == 3
    status, body = await gw.post(
        "/v1/filings", event("PAGE-A-3", FILER_A, "MAEU000000004"), headers=headers
    )
    assert status == 202, body
    ids["PAGE-A-3"] = body["id"]
    await wait_for(gw, body["id"], "delivered", headers)
    return ids


async def wait_for(gw: Any, fid: str, status: str, headers: dict[str, str]) -> None:
    import anyio

    with anyio.fail_after(60):  # a liveness bound, not a speed assert
        while (await gw.get(f"/v1/filings/{fid}", headers=headers))[1].get("status") != status:
            await anyio.sleep(0.02)


async def html(gw: Any, path: str, token: str | None = "admin") -> tuple[int, str, str]:
    headers = _auth(token) if token else {}
    async with gw.session.get(gw.url + path, headers=headers) as r:
        return r.status, r.content_type, await r.text()


def found(text: str) -> list[str]:
    """The record ids of a results fragment, in order (each row links to its page)."""
    return re.findall(r'<tr data-record="([^"]+)">\s*<td><a href="/ui/records/\1">', text)


async def test_search_fragment_finds_live_and_archived_pages_and_filters(
    tmp_path: Path, store_url: str, start_gateway: Any
) -> None:
    clock = ManualClock()
    gw = await start_gateway(pages_config(tmp_path, store_url), clock=clock)
    ids = await archived_and_live(gw, clock, _auth("admin"))
    status, ctype, text = await html(gw, "/ui/records/panel")
    assert (status, ctype) == (200, "text/html"), text
    assert sorted(found(text)) == sorted(ids.values())
    assert found(text)[0] == ids["PAGE-A-3"]  # live first
    assert text.count("archive <span") == 3
    # the form sends its empty boxes too: they do not count
    empty = "filing_type=&environment=&state=&received_from=&received_to=&entry_number="
    _, _, text = await html(gw, f"/ui/records/panel?reference=page-a-2&{empty}")
    assert found(text) == [ids["PAGE-A-2"]]
    _, _, text = await html(gw, "/ui/records/panel?bill_of_lading=MAEU000000003")
    assert found(text) == [ids["PAGE-B-1"]]
    _, _, text = await html(gw, f"/ui/records/panel?filer_code={FILER_A}&state=delivered")
    assert sorted(found(text)) == sorted(ids[r] for r in ("PAGE-A-1", "PAGE-A-2", "PAGE-A-3"))
    _, _, text = await html(gw, "/ui/records/panel?state=dead")
    assert found(text) == []
    today = clock.now().date()
    _, _, text = await html(gw, f"/ui/records/panel?received_from={today}")
    assert found(text) == [ids["PAGE-A-3"]]  # a date is that day from 00:00 UTC
    _, _, text = await html(gw, f"/ui/records/panel?received_to={today}")
    assert sorted(found(text)) == sorted(ids.values())  # ... and "to" counts that whole day
    _, _, text = await html(gw, f"/ui/records/panel?received_to={today - timedelta(days=1)}")
    assert sorted(found(text)) == sorted(ids[r] for r in ("PAGE-A-1", "PAGE-A-2", "PAGE-B-1"))
    _, _, text = await html(gw, "/ui/records/panel?reference=NOPE")
    assert found(text) == [] and "No record matches." in text
    # one row a page: the "Next page" links walk every record once
    seen: list[str] = []
    path: str | None = "/ui/records/panel?limit=1"
    while path is not None:
        status, _, text = await html(gw, path)
        assert status == 200, text
        seen += found(text)
        more = re.search(r'id="records-more" href="/ui/records\?([^"]+)"', text)
        path = None if more is None else "/ui/records/panel?" + more[1].replace("&amp;", "&")
    assert sorted(seen) == sorted(ids.values()) and len(seen) == len(set(seen))


async def test_record_fragment_shows_history_escaped_payload_and_where(
    tmp_path: Path, store_url: str, start_gateway: Any
) -> None:
    clock = ManualClock()
    gw = await start_gateway(pages_config(tmp_path, store_url), clock=clock)
    ids = await archived_and_live(gw, clock, _auth("admin"))
    _, rec = await gw.get(f"/v1/records/{ids['PAGE-A-1']}", headers=_auth("admin"))
    status, ctype, text = await html(gw, f"/ui/records/{ids['PAGE-A-1']}/panel")
    assert (status, ctype) == (200, "text/html"), text
    assert "<script>alert" not in text  # the payload's markup is text, not markup
    payload = re.search(r'<pre id="payload"[^>]*>(.*?)</pre>', text, re.S)
    assert payload is not None
    unescaped = payload[1].replace("&lt;", "<").replace("&gt;", ">").replace("&#34;", '"')
    unescaped = unescaped.replace("&#39;", "'").replace("&amp;", "&")
    assert unescaped == rec["record"]["filing"]["payload"]  # the exact text sent
    assert "&lt;script&gt;alert(" in payload[1]
    assert f"archived in segment <code>{rec['segment']}</code>" in text
    assert 'id="restore-form"' in text
    for event_name in ("filing.accepted", "delivery.sent"):
        assert f"<td>{event_name}</td>" in text, event_name
    assert rec["record"]["deliveries"][0]["id"] in text
    status, _, text = await html(gw, f"/ui/records/{ids['PAGE-A-3']}/panel")
    assert status == 200 and 'id="record-where">live' in text and "restore-form" not in text
    status, body = await gw.get(f"/ui/records/{MISSING}/panel", headers=_auth("admin"))
    assert status == 404 and body["error"]["message"] == f"no record {MISSING}"


async def test_a_token_limited_to_a_filer_sees_its_records_only(
    tmp_path: Path, store_url: str, start_gateway: Any
) -> None:
    clock = ManualClock()
    gw = await start_gateway(pages_config(tmp_path, store_url), clock=clock)
    ids = await archived_and_live(gw, clock, _auth("admin"))
    b = ids["PAGE-B-1"]
    for query in ("", f"?filer_code={FILER_B}", "?reference=PAGE-B-1", "?limit=1"):
        status, _, text = await html(gw, f"/ui/records/panel{query}", token="a")
        assert status == 200 and b not in text and "PAGE-B" not in text, (query, text[:400])
    _, _, text = await html(gw, "/ui/records/panel", token="a")
    assert sorted(found(text)) == sorted(ids[r] for r in ("PAGE-A-1", "PAGE-A-2", "PAGE-A-3"))
    got = await gw.get(f"/ui/records/{b}/panel", headers=_auth("a"))
    missing = await gw.get(f"/ui/records/{MISSING}/panel", headers=_auth("a"))
    assert (got[0], missing[0]) == (404, 404)
    assert got[1]["error"]["message"].replace(b, "ID") == missing[1]["error"]["message"].replace(
        MISSING, "ID"
    )
    status, _, text = await html(gw, f"/ui/records/{ids['PAGE-A-1']}/panel", token="a")
    assert status == 200 and "PAGE-A-1" in text


async def test_bad_input_is_a_422_naming_it_and_the_shell_holds_no_data(
    tmp_path: Path, store_url: str, start_gateway: Any
) -> None:
    clock = ManualClock()
    gw = await start_gateway(pages_config(tmp_path, store_url), clock=clock)
    ids = await archived_and_live(gw, clock, _auth("admin"))
    for query, loc in (
        ("received_from=yesterday", "received_from"),
        ("received_to=2026-13-40", "received_to"),
        ("colour=red", "colour"),
        ("cursor=bm9wZQ", "cursor"),
        ("limit=0", "limit"),
        ("reference=%20-%20", "reference"),
    ):
        status, body = await gw.get(f"/ui/records/panel?{query}", headers=_auth("admin"))
        assert status == 422, (query, body)
        assert loc in str(body["error"]["details"]), body
    assert (await html(gw, "/ui/records/panel", token=None))[0] == 401
    for path in (f"/ui/records?filer_code={FILER_A}", f"/ui/records/{ids['PAGE-A-2']}"):
        status, ctype, text = await html(gw, path, token=None)  # public shell: no data
        assert (status, ctype) == (200, "text/html")
        assert "PAGE-A" not in text and "Plain Co" not in text and ids["PAGE-A-1"] not in text
        assert 'src="/ui/static/records.js"' in text
    status, ctype, text = await html(gw, "/ui/static/records.js", token=None)
    assert status == 200 and "restore" in text
    status, _, text = await html(gw, "/ui/", token=None)
    assert '<a href="/ui/records">Records</a>' in text


async def test_with_auth_off_the_pages_render_their_content_inline(
    tmp_path: Path, store_url: str, start_gateway: Any
) -> None:
    clock = ManualClock()
    gw = await start_gateway(pages_config(tmp_path, store_url, auth=False), clock=clock)
    ids = await archived_and_live(gw, clock, {})
    status, _, text = await html(gw, "/ui/records?reference=PAGE-A-1&filer_code=", token=None)
    assert status == 200 and found(text) == [ids["PAGE-A-1"]]
    assert 'value="PAGE-A-1"' in text  # the form keeps what was searched
    status, _, text = await html(gw, "/ui/records?received_from=soon", token=None)
    assert status == 200 and "received_from: a date" in text
    status, _, text = await html(gw, f"/ui/records/{ids['PAGE-A-1']}", token=None)
    assert status == 200 and "&lt;script&gt;alert(" in text and "<script>alert" not in text
    status, _, text = await html(gw, f"/ui/records/{MISSING}", token=None)
    assert status == 200 and f"no record {MISSING}" in text
