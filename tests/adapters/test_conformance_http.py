"""The conformance kit against the ``http`` adapter and a real aiohttp receiver on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from adapters import http, testing
from tests.adapters.conftest import free_port


class HttpReceiver(testing.Receiver):
    """A real HTTP server; a request counts once its whole body has arrived."""

    def __init__(self) -> None:
        self.messages: list[testing.Received] = []
        self.aborted = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.content_length is not None and len(body) != request.content_length:
            self.aborted += 1
            raise web.HTTPBadRequest
        self.messages.append(testing.Received(id=request.headers["Idempotency-Key"], body=body))
        return web.json_response({"ok": True}, status=202)

    async def received(self) -> list[testing.Received]:
        return list(self.messages)


class TestHttpConformance(testing.AdapterConformance):
    # check() reports the client session, it does not probe the receiver
    check_probes_receiver = False
    bad_options = [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "https://example.com", "method": "GET"}, "method"),
        ({"url": "https://example.com", "client_key_file": "/nonexistent"}, "client_cert_file"),
    ]

    @pytest.fixture
    async def receiver(self) -> AsyncIterator[HttpReceiver]:
        receiver = HttpReceiver()
        app = web.Application(client_max_size=8 << 20)
        app.router.add_post("/in", receiver.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        receiver.url = f"http://127.0.0.1:{port}/in"
        yield receiver
        await runner.cleanup()

    @pytest.fixture
    def adapter(self, receiver: HttpReceiver) -> http.HttpAdapter:
        options = http.HttpOptions(url=receiver.url, timeout="5s")
        return http.HttpAdapter(name="http", options=options)

    @pytest.fixture
    def unreachable_adapter(self) -> http.HttpAdapter:
        options = http.HttpOptions(url=f"http://127.0.0.1:{free_port()}/in", timeout="2s")
        return http.HttpAdapter(name="http", options=options)
