"""The conformance kit against the ``filedrop`` adapter and a real directory."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from adapters import filedrop, testing


class DirectoryReceiver(testing.Receiver):
    """The pickup side of a drop directory: final files are messages, dot-files leftovers."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _files(self) -> list[Path]:
        return sorted(self.directory.iterdir()) if self.directory.exists() else []

    async def received(self) -> list[testing.Received]:
        files = await anyio.to_thread.run_sync(self._files)
        return [
            testing.Received(id=p.name.split(".")[0], body=p.read_bytes())
            for p in files
            if not p.name.startswith(".")
        ]

    async def leftovers(self) -> list[str]:
        files = await anyio.to_thread.run_sync(self._files)
        return [p.name for p in files if p.name.startswith(".")]


class TestFiledropConformance(testing.AdapterConformance):
    bad_options = [
        ({}, "directory"),
        ({"directory": "/tmp/x", "extension": "../evil"}, "extension"),
        ({"directory": "/tmp/x", "fsync": "sometimes"}, "fsync"),
    ]

    @pytest.fixture
    def receiver(self, tmp_path: Path) -> DirectoryReceiver:
        return DirectoryReceiver(tmp_path / "outbox")

    @pytest.fixture
    def adapter(self, receiver: DirectoryReceiver) -> filedrop.FiledropAdapter:
        options = filedrop.FiledropOptions(directory=receiver.directory)
        return filedrop.FiledropAdapter(name="filedrop", options=options)

    @pytest.fixture
    def unreachable_adapter(self, tmp_path: Path) -> filedrop.FiledropAdapter:
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("a file where the drop directory should be")
        options = filedrop.FiledropOptions(directory=blocker / "outbox")
        return filedrop.FiledropAdapter(name="filedrop", options=options)
