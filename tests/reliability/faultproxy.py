"""A small fault-injecting TCP proxy (row 6): pass, latency, reset, blackhole, half-open.

Modes apply to connections and chunks from the moment they are set:

* ``latency``: every chunk, both ways, waits ``latency_s``;
* ``reset``: a connection that sends data is closed with RST (SO_LINGER 0);
* ``blackhole``: data is read and dropped, nothing is answered, the connection stays open;
* ``half_open``: the request goes through, the answer never comes back (a peer that
  vanished without FIN after taking the request).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import Counter


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode = "pass"
        self.latency_s = 0.2
        self.port = 0
        self.seen: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t
        if self._server is not None:
            await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.seen[self.mode] += 1
        upstream: asyncio.StreamWriter | None = None
        try:
            up_reader, upstream = await asyncio.open_connection(*self.target)
            await asyncio.gather(
                self._pipe(reader, upstream, writer, upward=True),
                self._pipe(up_reader, writer, writer, upward=False),
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            for w in (writer, upstream):
                if w is not None:
                    w.close()

    async def _pipe(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
        *,
        upward: bool,
    ) -> None:
        while data := await src.read(65536):
            mode = self.mode
            if mode == "reset":
                sock = client.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.transport.abort()
                dst.close()
                return
            if mode == "blackhole" or (mode == "half_open" and not upward):
                continue  # swallowed: the other side waits for an answer that never comes
            if mode == "latency":
                await asyncio.sleep(self.latency_s)
            dst.write(data)
            await dst.drain()
