"""Row 7: SQLite on a small tmpfs that fills up: ingest answers 503 with a clear error,
nothing accepted is lost, reads keep working, and ingest recovers when space returns."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import base_config, example, service_missing


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        service_missing(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Write a filler file until the disk is full."""
    filler = disk / "filler"
    try:
        with filler.open("wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    return filler


@pytest.mark.slow
async def test_disk_full_refuses_ingest_with_503_keeps_reads_and_recovers(
    tmp_path, start_gateway, figure
):
    """Row 7: full disk → 503 naming storage; accepted filings readable; recovers after."""
    with small_tmpfs(tmp_path / "disk", "8m") as disk:
        gw = await start_gateway(
            base_config(tmp_path, gateway={"store": f"sqlite:///{disk / 'gateway.db'}"})
        )
        accepted: list[str] = []
        for i in range(20):
            status, body = await gw.post("/v1/filings", example(reference=f"D-{i}"))
            assert status == 202
            accepted.append(body["id"])
        filler = fill(disk)
        refused: list[dict] = []
        for i in range(200):  # the WAL may still hold a few pages: write until refused
            status, body = await gw.post("/v1/filings", example(reference=f"F-{i}"))
            if status == 202:
                accepted.append(body["id"])
                continue
            assert status == 503, (status, body)
            refused.append(body)
            if len(refused) >= 3:
                break
        assert refused, "the full disk never refused a write"
        message = refused[0]["error"]["message"].lower()
        assert any(w in message for w in ("disk", "full", "space", "storage")), refused[0]
        for fid in accepted:  # reads keep working on a full disk
            status, body = await gw.get(f"/v1/filings/{fid}")
            assert status == 200 and body["id"] == fid
        status, _ = await gw.get("/v1/filings?limit=5")
        assert status == 200
        filler.unlink()  # space returns
        started = time.monotonic()
        deadline = started + 60  # a liveness bound: a count of tries would depend on speed
        for i in itertools.count():
            status, body = await gw.post("/v1/filings", example(reference=f"A-{i}"))
            if status == 202:
                accepted.append(body["id"])
                break
            assert time.monotonic() < deadline, f"ingest did not recover: {status} {body}"
            await asyncio.sleep(0.02)  # a poll interval
        recovered_s = time.monotonic() - started
        for fid in accepted:
            await gw.wait_for(fid, "delivered", timeout=20)
        await gw.stop()
        import sqlite3

        with sqlite3.connect(disk / "gateway.db") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            stored = {r[0] for r in conn.execute("SELECT id FROM filings")}
        assert set(accepted) <= stored
    figure(
        "row7",
        f"tmpfs 8m full: {len(refused)} ingests refused 503 ({refused[0]['error']['code']}), "
        f"{len(accepted)} accepted all kept and delivered, reads ok while full, recovered "
        f"{recovered_s:.2f}s after space returned, integrity ok",
    )
