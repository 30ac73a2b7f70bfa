"""The directory backend: whole objects by name, atomic puts, a killed writer's leftovers
cleaned on the next open (real files, a real process killed with SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.records import errors, storage

ROOT = Path(__file__).resolve().parents[2]


def test_put_get_list_delete_round_trip(tmp_path):
    """What is put comes back whole, is listed, and is gone after delete."""
    st = storage.DirectoryStorage(tmp_path / "segments")
    st.put("b.seg", b"second")
    st.put("a.seg", b"first")
    assert st.list() == ["a.seg", "b.seg"]
    assert st.get("a.seg") == b"first"
    st.delete("a.seg")
    st.delete("a.seg")  # a retried purge is not an error
    assert st.list() == ["b.seg"]
    with pytest.raises(errors.SegmentMissing, match=r"a\.seg"):
        st.get("a.seg")


def test_a_segment_is_never_replaced_by_other_bytes(tmp_path):
    """Segments are immutable: the same bytes again is a no-op, other bytes are refused."""
    st = storage.DirectoryStorage(tmp_path)
    st.put("a.seg", b"first")
    st.put("a.seg", b"first")
    with pytest.raises(errors.StorageError, match="other bytes"):
        st.put("a.seg", b"changed")
    assert st.get("a.seg") == b"first"


@pytest.mark.parametrize("name", ["../escape.seg", ".hidden", "a/b.seg", "", "x" * 201, "a b"])
def test_a_name_that_is_a_path_or_hidden_is_refused(tmp_path, name):
    """A segment name never leaves the directory nor hides as a temporary file."""
    st = storage.DirectoryStorage(tmp_path)
    with pytest.raises(errors.BadName):
        st.put(name, b"x")
    assert os.listdir(tmp_path) == []


_CHILD = textwrap.dedent(
    """
    import os, sys
    from gateway.records import storage

    root, stop = sys.argv[1], sys.argv[2]
    data = bytes(range(256)) * 4096  # 1 MiB
    real_write, real_fsync, real_replace = os.write, os.fsync, os.replace

    def pause():
        sys.stdout.write("paused\\n")
        sys.stdout.flush()
        sys.stdin.read()  # until killed

    def half_write(fd, view):
        real_write(fd, view[: len(view) // 2])
        pause()

    def fsync_then_pause(fd):
        pause()

    def replace_then_pause(src, dst):
        real_replace(src, dst)
        pause()

    def pause_before_replace(src, dst):
        pause()

    st = storage.DirectoryStorage(root)
    if stop == "write":
        os.write = half_write
    elif stop == "fsync":
        os.fsync = fsync_then_pause
    elif stop == "replace":
        os.replace = pause_before_replace
    elif stop == "dirsync":
        os.replace = replace_then_pause
    st.put("20260105T120000Z-0123456789abcdef0123456789abcdef.seg", data)
    """
)
NAME = "20260105T120000Z-0123456789abcdef0123456789abcdef.seg"
DATA = bytes(range(256)) * 4096


@pytest.mark.parametrize(
    ("stop", "visible"),
    [("write", False), ("fsync", False), ("replace", False), ("dirsync", True)],
)
def test_a_writer_killed_at_any_point_leaves_no_partial_segment(tmp_path, stop, visible):
    """SIGKILL mid-write, before fsync, before or after the rename: the final name shows the
    whole segment or nothing; an open beside the live writer leaves its file alone, the open
    after the kill deletes the leftovers."""
    root = tmp_path / "segments"
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(root), stop],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline() == b"paused\n"
        temps = [n for n in os.listdir(root) if n.startswith(".tmp-")]
        beside = storage.DirectoryStorage(root)  # e.g. `records verify` while it writes
        assert beside.cleaned == []
        assert [n for n in os.listdir(root) if n.startswith(".tmp-")] == temps
        child.send_signal(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL
    if visible:
        assert (root / NAME).read_bytes() == DATA
    else:
        assert not (root / NAME).exists()
        assert [n for n in os.listdir(root) if n.startswith(".tmp-")], "the temp file is there"

    reopened = storage.DirectoryStorage(root)
    assert [n for n in os.listdir(root) if n.startswith(".tmp-")] == []
    assert reopened.list() == ([NAME] if visible else [])
    if visible:
        assert reopened.get(NAME) == DATA
    else:
        assert len(reopened.cleaned) == 1
