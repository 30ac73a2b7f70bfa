"""A directory source: dropped files become filings and move to done/ or rejected/."""

from __future__ import annotations

import asyncio
import json

from tests.conftest import base_config
from tests.inbound.conftest import TMS_SOURCE, booking, cloudevent, filings, rejected


async def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def drops_config(tmp_path):
    source = {**TMS_SOURCE, "kind": "directory", "directory": str(tmp_path / "drops"),
              "poll_interval": "100ms"}  # fmt: skip
    return base_config(tmp_path, sources={"legacy": source})


async def test_dropped_files_are_filed_then_moved_to_done(tmp_path, start_gateway):
    """A plain event and a CloudEvent file each become a filing, then move to done/."""
    drops = tmp_path / "drops"
    drops.mkdir()
    (drops / "a.json").write_text(json.dumps(booking(1)))
    (drops / "b.json").write_text(json.dumps(cloudevent(booking(2, mode="air"), id="ce-b")))
    (drops / "c.json.tmp").write_text("half written")
    gw = await start_gateway(drops_config(tmp_path))
    await wait_until(lambda: len(list((drops / "done").glob("*.json"))) == 2)
    rows = filings(tmp_path / "gateway.db")
    assert sorted((r["source"], r["source_event_id"], r["filing_type"]) for r in rows) == [
        ("file:a.json", "a.json", "isf"),
        ("file:b.json", "ce-b", "manifest.air"),
    ]
    assert (drops / "c.json.tmp").exists()  # an unfinished write is left alone
    _, ready = await gw.get("/readyz")
    assert ready["sources"]["legacy"]["status"] == "ok"
    assert ready["sources"]["legacy"]["accepted"] == 2


async def test_same_file_dropped_again_is_a_duplicate_not_a_second_filing(tmp_path, start_gateway):
    """Same name and content (e.g. a crash before the move) → the filing is found, not made."""
    drops = tmp_path / "drops"
    drops.mkdir()
    (drops / "a.json").write_text(json.dumps(booking(1)))
    await start_gateway(drops_config(tmp_path))
    await wait_until(lambda: (drops / "done" / "a.json").exists())
    (drops / "a.json").write_text(json.dumps(booking(1)))
    await wait_until(lambda: (drops / "done" / "a.1.json").exists())
    assert len(filings(tmp_path / "gateway.db")) == 1


async def test_a_file_that_cannot_be_normalized_is_rejected_with_its_reason(
    tmp_path, start_gateway
):
    """Moved to rejected/ with NAME.reason.txt; one rejected_events row; listed by the API."""
    drops = tmp_path / "drops"
    drops.mkdir()
    (drops / "bad.json").write_text(json.dumps(booking(1, mode="barge")))
    (drops / "junk.json").write_bytes(b"\xff\xfe not json")
    gw = await start_gateway(drops_config(tmp_path))
    await wait_until(lambda: len(list((drops / "rejected").glob("*.reason.txt"))) == 2)
    assert "data.booking.mode" in (drops / "rejected" / "bad.json.reason.txt").read_text()
    rows = rejected(tmp_path / "gateway.db")
    assert sorted((r["origin"], json.loads(r["details"])[0]["loc"]) for r in rows) == [
        ("file:bad.json", "data.booking.mode"),
        ("file:junk.json", "body"),
    ]
    assert filings(tmp_path / "gateway.db") == []
    status, listed = await gw.get("/v1/rejected-events?source=legacy")
    assert status == 200
    assert {i["origin"] for i in listed["items"]} == {"file:bad.json", "file:junk.json"}
    junk = next(i for i in listed["items"] if i["origin"] == "file:junk.json")
    assert junk["body"].startswith("base64:")


async def test_a_file_nested_100000_deep_is_rejected_and_the_source_goes_on(
    tmp_path, start_gateway
):
    """JSON nested 100,000 deep is a rejected event naming its depth (no RecursionError);
    the source keeps reading: a good file dropped after it is filed."""
    drops = tmp_path / "drops"
    drops.mkdir()
    (drops / "deep.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    await start_gateway(drops_config(tmp_path))
    await wait_until(lambda: (drops / "rejected" / "deep.json.reason.txt").exists())
    assert "deeper than" in (drops / "rejected" / "deep.json.reason.txt").read_text()
    (drops / "good.json").write_text(json.dumps(booking(2)))
    await wait_until(lambda: len(filings(tmp_path / "gateway.db")) == 1)


async def test_a_consumer_that_crashes_is_restarted_and_the_gateway_keeps_serving(
    tmp_path, start_gateway, monkeypatch
):
    """An unexpected error inside a source (here: injected once into the directory consumer's
    take) is shown on /readyz and the source starts again; HTTP intake never stops, and the
    file the crash interrupted is filed once after the restart."""
    from gateway.inbound import consumers, directory

    real_take = directory.DirectoryConsumer._take
    crashes: list[str] = []

    async def take_once_broken(self, path):
        if not crashes:
            crashes.append(path.name)
            raise RuntimeError("injected bug")
        await real_take(self, path)

    monkeypatch.setattr(directory.DirectoryConsumer, "_take", take_once_broken)
    monkeypatch.setattr(consumers, "RESTART_FIRST_S", 0.5)
    drops = tmp_path / "drops"
    drops.mkdir()
    (drops / "a.json").write_text(json.dumps(booking(1)))
    gw = await start_gateway(drops_config(tmp_path))
    status = gw.gateway.consumers["legacy"].status
    await wait_until(lambda: crashes and "crashed" in status.detail)
    code, ready = await gw.get("/readyz")
    assert code == 200 and "injected bug" in ready["sources"]["legacy"]["detail"]
    await wait_until(lambda: (drops / "done" / "a.json").exists(), timeout=30)
    assert crashes == ["a.json"]
    assert len(filings(tmp_path / "gateway.db")) == 1
    await wait_until(lambda: status.state == "ok")
