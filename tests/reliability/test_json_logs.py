"""The log stays JSON: library records and their tracebacks become one JSON line each."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import socket
import time

import aiohttp
import structlog

from gateway import logs
from tests.conftest import free_port
from tests.reliability import relkit


def _parsed(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    bad = []
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            bad.append(line)
    assert not bad, f"{len(bad)} of {len(lines)} log lines are not JSON: {bad[:5]}"
    return parsed


async def test_library_tracebacks_in_a_serve_process_are_single_json_lines(tmp_path):
    """A malformed request makes aiohttp log a traceback; every line of serve's stderr is JSON."""
    receiver = relkit.Receiver()
    await receiver.start()
    config = tmp_path / "gw.toml"
    config.write_text(
        relkit.config_text(store=f"sqlite:///{tmp_path / 'gw.db'}", receiver_url=receiver.url)
    )
    serve = relkit.Serve(config=config, port=free_port(), log=tmp_path / "serve.log")
    serve.start()
    try:
        async with aiohttp.ClientSession() as session:
            await serve.wait_ready(session)
        for _ in range(3):  # a header line without a colon: aiohttp's BadHttpMessage
            with socket.create_connection(("127.0.0.1", serve.port), timeout=10) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n")
                assert sock.recv(4096).startswith(b"HTTP/1.0 400")
        deadline = time.monotonic() + 30
        while "Error handling request" not in serve.log.read_text(errors="replace"):
            assert time.monotonic() < deadline, serve.log_tail()
            await asyncio.sleep(0.05)
    finally:
        assert serve.terminate() == 0
        await receiver.stop()
    parsed = _parsed(serve.log.read_text(errors="replace"))
    errors = [p for p in parsed if p.get("logger") == "aiohttp.server"]
    assert len(errors) == 3, errors
    assert all("Traceback" in e["exception"] and "BadHttpMessage" in e["exception"] for e in errors)
    assert all(e["level"] == "error" and e["timestamp"] for e in errors)
    assert any(p.get("event") == "gateway.stopped" for p in parsed)


async def test_stdlib_and_asyncio_records_are_routed_through_structlog():
    """asyncpg/aio-pika/asyncssh records and an unretrieved task exception: one JSON line each."""
    stream = io.StringIO()
    logs.configure("json", "info", stream=stream)
    try:
        try:
            raise ConnectionResetError("connection lost")
        except ConnectionResetError:
            logging.getLogger("asyncpg.pool").exception("reconnecting with password=hunter2hunter2")
        logging.getLogger("aio_pika.robust_connection").warning("robust reconnect in %s s", 5)
        logging.getLogger("asyncssh").info("chatty connection line, below the threshold")
        logging.getLogger("asyncssh").error("ssh failed")

        async def fails() -> None:
            raise ValueError("nobody awaited me")

        task = asyncio.get_running_loop().create_task(fails())
        await asyncio.wait([task])
        del task
        gc.collect()  # the task's __del__ reports "Task exception was never retrieved"
    finally:
        structlog.reset_defaults()
    parsed = _parsed(stream.getvalue())
    by_logger = {p["logger"]: p for p in parsed if "logger" in p}
    assert set(by_logger) == {"asyncpg.pool", "aio_pika.robust_connection", "asyncssh", "asyncio"}
    assert "Traceback" in by_logger["asyncpg.pool"]["exception"]
    assert "hunter2hunter2" not in stream.getvalue()  # redacted like every other line
    assert by_logger["aio_pika.robust_connection"]["event"] == "robust reconnect in 5 s"
    assert by_logger["asyncssh"]["event"] == "ssh failed"
    assert by_logger["asyncio"]["event"].startswith("Task exception was never retrieved")
    assert "ValueError: nobody awaited me" in by_logger["asyncio"]["exception"]
