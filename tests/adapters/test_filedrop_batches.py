"""filedrop's group commit: a backlog written by a few threads in batches, each send's
outcome still its own, on a real directory."""

from __future__ import annotations

import errno
import json
import threading
from pathlib import Path

import anyio
import pytest

from adapters import filedrop
from gateway import errors, models
from tests.test_workers import _message  # the same message, numbered


async def _adapter(directory: Path) -> filedrop.FiledropAdapter:
    adapter = filedrop.FiledropAdapter(
        name="drop", options=filedrop.FiledropOptions(directory=directory)
    )
    await adapter.open()
    return adapter


async def _send_all(
    adapter: filedrop.FiledropAdapter, numbers: range
) -> dict[int, models.Receipt | Exception]:
    """Send every message at once, as the dispatcher does a backlog; each outcome by number."""
    outcomes: dict[int, models.Receipt | Exception] = {}

    async def send(i: int) -> None:
        try:
            outcomes[i] = await adapter.send(_message(i))
        except errors.TransientError as exc:
            outcomes[i] = exc

    async with anyio.create_task_group() as tg:
        for i in numbers:
            tg.start_soon(send, i)
    return outcomes


async def test_a_backlog_is_written_by_a_few_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two hundred sends at once are written by at most writers times lanes threads (not one
    thread per send), and every file arrives whole under its own name."""
    real_write = filedrop._write_file
    threads: set[int] = set()

    def write(target: Path, body: bytes, fsync: bool) -> None:
        threads.add(threading.get_ident())
        real_write(target, body, fsync)

    monkeypatch.setattr(filedrop, "_write_file", write)
    out = tmp_path / "out"
    outcomes = await _send_all(await _adapter(out), range(200))
    assert all(isinstance(o, models.Receipt) for o in outcomes.values())
    assert 1 <= len(threads) <= filedrop._WRITERS * filedrop._LANES
    for i in range(200):
        assert json.loads((out / f"dlv_{i:04d}.json").read_bytes()) == {"n": i}
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


async def test_one_delivery_sent_twice_in_a_batch_is_written_in_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same delivery queued several times (a resend while the first send still waits)
    is written by one thread in queue order, never by two at once through the one
    temporary name: the file left is whole and is the last one sent."""
    real_write = filedrop._write_file
    writers: dict[str, set[int]] = {}

    def write(target: Path, body: bytes, fsync: bool) -> None:
        writers.setdefault(target.name, set()).add(threading.get_ident())
        real_write(target, body, fsync)

    monkeypatch.setattr(filedrop, "_write_file", write)
    out = tmp_path / "out"
    adapter = await _adapter(out)
    sends = [_message(i % 4).model_copy(update={"body": b"%d" % i}) for i in range(32)]
    async with anyio.create_task_group() as tg:
        for message in sends:
            tg.start_soon(adapter.send, message)
    assert all(len(threads) == 1 for threads in writers.values()), writers
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {
        f"dlv_{i:04d}.json": b"%d" % (28 + i) for i in range(4)
    }


async def test_a_file_that_fails_fails_only_its_own_send(tmp_path: Path) -> None:
    """In a batch, a file that cannot be renamed into place (a directory holds its name)
    fails its send, retryably, and leaves no temporary file; the others are delivered."""
    out = tmp_path / "out"
    (out / "dlv_0007.json").mkdir(parents=True)
    outcomes = await _send_all(await _adapter(out), range(20))
    assert isinstance(outcomes[7], errors.TransientError)
    assert "dlv_0007.json" in str(outcomes[7])
    assert all(isinstance(outcomes[i], models.Receipt) for i in range(20) if i != 7)
    assert sorted(p.name for p in out.iterdir()) == [f"dlv_{i:04d}.json" for i in range(20)]


async def test_a_failed_directory_fsync_fails_its_whole_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory fsync that fails leaves every rename of its batch unproven: each send
    of that batch fails (retryably), and the next batch is delivered again."""
    real_sync = filedrop._fsync_dir
    failed: list[int] = []

    def sync(directory: Path) -> None:
        if not failed:
            failed.append(1)
            raise OSError(errno.EIO, "I/O error")
        real_sync(directory)

    monkeypatch.setattr(filedrop, "_fsync_dir", sync)
    adapter = await _adapter(tmp_path / "out")
    first = await _send_all(adapter, range(1))
    assert isinstance(first[0], errors.TransientError)
    assert "I/O error" in str(first[0])
    again = await _send_all(adapter, range(30))
    assert all(isinstance(o, models.Receipt) for o in again.values())


async def test_cancelled_sends_lose_no_file_and_no_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sends cancelled while their files wait behind a running batch (one handed the writer
    slot as that batch ends): every queued file is still written, and later sends still
    find a writer (the slot is not lost with a cancelled send)."""
    real_write = filedrop._write_file
    writing, go_on = threading.Event(), threading.Event()

    def write(target: Path, body: bytes, fsync: bool) -> None:
        writing.set()
        go_on.wait()
        real_write(target, body, fsync)

    monkeypatch.setattr(filedrop, "_WRITERS", 1)
    monkeypatch.setattr(filedrop, "_write_file", write)
    out = tmp_path / "out"
    adapter = await _adapter(out)
    scopes = [anyio.CancelScope() for _ in range(21)]

    async def send(i: int) -> None:
        with scopes[i]:
            await adapter.send(_message(i))

    async with anyio.create_task_group() as tg:
        tg.start_soon(send, 0)
        await anyio.to_thread.run_sync(writing.wait)  # the one writer is busy with file 0
        for i in range(1, 21):
            tg.start_soon(send, i)
        while len(adapter._batchers[out].queue) < 20:
            await anyio.lowlevel.checkpoint()
        for scope in scopes[1::2]:  # send 1 is the one the slot goes to next
            scope.cancel()
        go_on.set()
        with anyio.fail_after(30):  # a lost slot would leave the queue waiting for ever
            await _send_all(adapter, range(100, 110))
    assert sorted(p.name for p in out.iterdir()) == [
        f"dlv_{i:04d}.json" for i in [*range(21), *range(100, 110)]
    ]
