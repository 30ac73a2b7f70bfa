"""Live dashboard updates over server-sent events (issue 21): ``GET /ui/events`` (scope read).

One ``Hub`` per application watches for change and renders; every open stream only
forwards. Once a second, while someone listens, the hub reads a cheap signature — the
audit trail's head (every state change, pause, outage and ack writes an audit row), the
in-process gate and breaker states, and the half-minute (ages and calendar windows move
with time) — and only when it changed renders the panels, once per filer filter in use,
and hands the HTML to each stream of that filter. A stream keeps at most one pending
update: a slow reader gets the newest and never a backlog, so a connection holds one
rendered page at most. A comment line goes out every ``HEARTBEAT_S`` when nothing changed,
so proxies keep the connection and the page notices a dead one.

The browser reads the stream with ``fetch`` (``EventSource`` cannot send the bearer
header) and polls ``/ui/panels`` only while the stream is down. At shutdown
(``on_shutdown``, before aiohttp waits for handlers) every stream is ended, so open
dashboards never hold a stopping gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from gateway.api import handlers

log = structlog.get_logger("gateway.api.live")

#: how often the hub looks for change while someone listens
TICK_S = 1.0
#: a comment line this often when nothing changed
HEARTBEAT_S = 15.0
#: the page's reconnect delay (the SSE ``retry`` field)
RETRY_MS = 3000
#: the half-minute bucket: panels show ages, so they are refreshed this often anyway
TIME_BUCKET_S = 30

Render = Callable[[web.Application, str | None], Awaitable[str]]


@dataclass(eq=False)
class Stream:
    """One open connection: the newest update not yet written (older ones are dropped)."""

    filer: str | None
    pending: str | None = None
    closed: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, html: str) -> None:
        self.pending = html  # replaces an unsent one: bounded to one page per connection
        self.wake.set()

    def close(self) -> None:
        self.closed = True
        self.wake.set()


class Hub:
    """Watches for change while streams are open; renders once per filter; fans out."""

    def __init__(self, app: web.Application, render: Render) -> None:
        self.app = app
        self.render = render
        self.streams: set[Stream] = set()
        self.last: dict[str | None, str] = {}  # filter → last HTML sent
        self.signature: object = None
        self.task: asyncio.Task[None] | None = None
        self.stopped = False

    async def _signature(self) -> object:
        service = self.app[handlers.SERVICE]
        head = await service.store.audit_head()
        gates = json.dumps(service.outage_status(), sort_keys=True, default=str)
        bucket = int(service.clock.now().timestamp() // TIME_BUCKET_S)
        return (head, gates, bucket)

    async def open(self, filer: str | None) -> Stream:
        """A new stream, given the current panels at once (rendered before it is kept, so
        a failed render leaves nothing behind)."""
        html = self.last.get(filer)
        if html is None:
            html = self.last[filer] = await self.render(self.app, filer)
        stream = Stream(filer)
        stream.offer(html)
        if self.stopped:  # shutting down: the stream ends at once
            stream.close()
            return stream
        self.streams.add(stream)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._watch(), name="dashboard-live")
        return stream

    def leave(self, stream: Stream) -> None:
        self.streams.discard(stream)
        if not any(s.filer == stream.filer for s in self.streams):
            self.last.pop(stream.filer, None)

    async def _watch(self) -> None:
        while self.streams and not self.stopped:
            try:
                await self.tick()
            except Exception as exc:  # a failed read: streams keep their page, try again
                log.warning("dashboard.live_failed", error=repr(exc))
            await asyncio.sleep(TICK_S)
        self.signature = None
        self.last.clear()

    async def tick(self) -> None:
        """Render and hand out the panels when the signature moved."""
        signature = await self._signature()
        if signature == self.signature:
            return
        self.signature = signature
        for filer in {s.filer for s in self.streams}:
            html = await self.render(self.app, filer)
            if html == self.last.get(filer):
                continue
            self.last[filer] = html
            for stream in [s for s in self.streams if s.filer == filer]:
                stream.offer(html)

    async def shutdown(self, _app: web.Application | None = None) -> None:
        """End every stream (``on_shutdown``: before aiohttp waits for open handlers)."""
        self.stopped = True
        for stream in list(self.streams):
            stream.close()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


HUB = web.AppKey("dashboard_hub", Hub)


def setup(app: web.Application, render: Render) -> None:
    hub = Hub(app, render)
    app[HUB] = hub
    app.on_shutdown.append(hub.shutdown)


def frame(event: str, data: str) -> bytes:
    """One SSE event; each line of ``data`` on a ``data:`` line of its own."""
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {event}\n{lines}\n".encode()


async def events(request: web.Request, filer: str | None) -> web.StreamResponse:
    """The panels as a stream: the current ones at once, then each change."""
    hub = request.app[HUB]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # nginx: pass each event on at once
        }
    )
    stream = await hub.open(filer)
    try:
        await response.prepare(request)
        await response.write(f"retry: {RETRY_MS}\n\n".encode())
        while not stream.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stream.wake.wait(), HEARTBEAT_S)
            stream.wake.clear()
            html, stream.pending = stream.pending, None
            if stream.closed:
                break
            await response.write(frame("panels", html) if html is not None else b": alive\n\n")
    except ConnectionError:
        pass  # the page went away
    finally:
        hub.leave(stream)
    return response
