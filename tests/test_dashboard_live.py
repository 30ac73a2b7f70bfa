"""The dashboard's event stream over HTTP (issue 21): panels at once and on change, a
heartbeat while nothing changes, one pending page per slow connection, and a gateway that
stops at once with streams open."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from gateway.api import live
from tests.conftest import base_config, example


async def next_frame(response: aiohttp.ClientResponse) -> str:
    return (await asyncio.wait_for(response.content.readuntil(b"\n\n"), 30)).decode()


async def test_stream_sends_the_panels_then_a_change_then_heartbeats(
    tmp_path, start_gateway, monkeypatch
):
    """The first event is the panels; a submit brings a new `panels` event; with nothing
    changing, comment lines keep the connection alive."""
    monkeypatch.setattr(live, "HEARTBEAT_S", 0.2)
    gw = await start_gateway(base_config(tmp_path))
    async with gw.session.get(gw.url + "/ui/events") as r:
        assert r.status == 200 and r.headers["Content-Type"] == "text/event-stream"
        assert (await next_frame(r)).startswith("retry: ")
        first = await next_frame(r)
        assert first.startswith("event: panels\n") and 'id="totals"' in first
        status, body = await gw.post("/v1/filings", example(reference="SSE-1"))
        assert status == 202
        frame = await next_frame(r)
        while not frame.startswith("event: panels"):  # heartbeats until the change shows
            assert frame == ": alive\n\n"
            frame = await next_frame(r)
        assert frame != first
        await gw.wait_for(body["id"], "delivered")
        frames = [await next_frame(r) for _ in range(8)]  # settled: heartbeats come
        assert ": alive\n\n" in frames


async def test_a_bad_filer_filter_is_a_422_naming_it(tmp_path, start_gateway):
    """`?filer=` takes a filer code; anything else is refused before the stream opens."""
    gw = await start_gateway(base_config(tmp_path))
    for path in ("/ui/events?filer=no%20way", "/ui/panels?filer=no%20way", "/ui/panels?x=1"):
        status, body = await gw.get(path)
        assert status == 422, path
        assert body["error"]["details"][0]["loc"] in ("query.filer", "query.x")


async def test_a_slow_stream_holds_one_pending_page_not_a_backlog():
    """Updates offered faster than a connection writes replace each other."""
    stream = live.Stream(filer=None)
    for i in range(1000):
        stream.offer(f"page {i}")
    assert stream.pending == "page 999" and stream.wake.is_set()


@pytest.mark.timeout(60)
async def test_gateway_stops_promptly_with_dashboard_streams_open(tmp_path, start_gateway):
    """Two open streams end (EOF) when the gateway stops, and the stop does not wait for
    them (aiohttp would wait up to its 60 s shutdown timeout for open handlers)."""
    gw = await start_gateway(base_config(tmp_path))
    async with (
        aiohttp.ClientSession() as s,
        s.get(gw.url + "/ui/events") as a,
        s.get(gw.url + "/ui/events") as b,
    ):
        await next_frame(a), await next_frame(b)
        await gw.stop()  # fails after 15 s (Running.stop) if the streams hold it
        for r in (a, b):  # whatever changed while stopping came, then the end
            await asyncio.wait_for(r.content.read(), 10)
            assert r.content.at_eof()
