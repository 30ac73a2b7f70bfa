"""The ``van`` adapter against a small VAN API served on loopback, and the conformance kit."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from edigw_van import adapter as van

from adapters import testing
from gateway import errors

API_KEY = "test-van-key"


class FakeVan(testing.Receiver):
    """A VAN API on loopback: mailboxes, API key, idempotency, maintenance windows."""

    def __init__(self) -> None:
        self.messages: dict[str, testing.Received] = {}
        self.maintenance_until: str | None = None
        self.url = ""

    async def post(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return web.json_response({"error": "bad key"}, status=401)
        if self.maintenance_until:
            return web.Response(status=503, headers={"X-Maintenance-Until": self.maintenance_until})
        body = await request.read()
        if request.content_length is not None and len(body) != request.content_length:
            raise web.HTTPBadRequest
        key = request.headers["Idempotency-Key"]
        duplicate = key in self.messages
        self.messages.setdefault(key, testing.Received(id=key, body=body))
        return web.json_response({"message_id": f"van-{key}"}, status=200 if duplicate else 201)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def received(self) -> list[testing.Received]:
        return list(self.messages.values())


@pytest.fixture
async def fake_van(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeVan]:
    monkeypatch.setenv("VAN_API_KEY", API_KEY)
    fake = FakeVan()
    app = web.Application(client_max_size=8 << 20)
    app.router.add_post("/mailboxes/CBP-ACE/messages", fake.post)
    app.router.add_get("/health", fake.health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield fake
    await runner.cleanup()


def make_adapter(url: str, **changes: object) -> van.VanAdapter:
    options = {"url": url, "mailbox": "CBP-ACE", "api_key_env": "VAN_API_KEY", "timeout": "5s"}
    return van.VanAdapter(name="van", options=van.VanOptions(**{**options, **changes}))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestVanConformance(testing.AdapterConformance):
    bad_options = [
        ({"url": "http://van.example", "api_key_env": "K"}, "mailbox"),
        ({"url": "http://van.example", "mailbox": "a/b", "api_key_env": "K"}, "mailbox"),
        ({"url": "not a url", "mailbox": "m", "api_key_env": "K"}, "url"),
    ]

    @pytest.fixture
    def receiver(self, fake_van: FakeVan) -> FakeVan:
        return fake_van

    @pytest.fixture
    def adapter(self, fake_van: FakeVan) -> van.VanAdapter:
        return make_adapter(fake_van.url)

    @pytest.fixture
    def unreachable_adapter(self, monkeypatch: pytest.MonkeyPatch) -> van.VanAdapter:
        monkeypatch.setenv("VAN_API_KEY", API_KEY)
        return make_adapter(f"http://127.0.0.1:{closed_port()}", timeout="2s")


async def test_maintenance_window_is_an_outage_with_its_end(fake_van: FakeVan) -> None:
    """A 503 with X-Maintenance-Until defers (OutageError) until the time the VAN gave."""
    fake_van.maintenance_until = "2030-01-01T04:00:00+00:00"
    adapter = make_adapter(fake_van.url)
    try:
        with pytest.raises(errors.OutageError) as info:
            await adapter.send(testing.make_message())
    finally:
        await adapter.close()
    assert info.value.until is not None
    assert info.value.until.isoformat() == "2030-01-01T04:00:00+00:00"


async def test_a_refused_api_key_is_permanent(
    fake_van: FakeVan, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The VAN refusing the key will not get better by retrying: PermanentError."""
    monkeypatch.setenv("VAN_API_KEY", "wrong")
    adapter = make_adapter(fake_van.url)
    try:
        with pytest.raises(errors.PermanentError, match="401"):
            await adapter.send(testing.make_message())
    finally:
        await adapter.close()
    assert fake_van.messages == {}


async def test_a_duplicate_is_reported_as_such(fake_van: FakeVan) -> None:
    """A redelivery gets the VAN's same message id back, marked as a duplicate."""
    adapter = make_adapter(fake_van.url)
    message = testing.make_message()
    try:
        first = await adapter.send(message)
        again = await adapter.send(message.model_copy(update={"attempt": 2}))
    finally:
        await adapter.close()
    assert first.transport_id == again.transport_id == f"van-{message.delivery_id}"
    assert (first.detail, again.detail) == ({"duplicate": False}, {"duplicate": True})
