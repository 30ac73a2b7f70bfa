"""Encryption at rest in the live store (issue 20), on SQLite and PostgreSQL: with a key
configured, ``filings.payload`` and ``deliveries.receipt`` hold AES-GCM sealed values bound
to their row; everything that reads them (the dispatcher's claim, the filing view, the
records mover, show, restore) sees plaintext; keys rotate; a key in use that is missing or
wrong stops ``serve`` and the CLI at start, naming it."""

from __future__ import annotations

import base64
import os
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest

from gateway import config, values
from gateway.cli.main import main
from gateway.clock import ManualClock
from gateway.records import crypto
from gateway.records import errors as rerrors
from gateway.service import mover as mover_mod
from gateway.service import sealing
from gateway.service.records import Records
from gateway.store import base
from tests.conftest import base_config, example
from tests.records.test_records_wiring import LATER, finished
from tests.store.test_contract import ACTOR, new, raw
from tests.store.test_contract_more import deliver

MARK = "IMPORTER-SECRET-0042"
KEY1, KEY2 = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``keys("k1:…;k2:…")`` sets the process's keys (None: no key) for this test only."""
    monkeypatch.delenv(crypto.ENV_KEYS_FILE, raising=False)
    monkeypatch.delenv(crypto.ENV_KEY_ID, raising=False)

    def use(value: str | None) -> None:
        if value is None:
            monkeypatch.delenv(crypto.ENV_KEYS, raising=False)
        else:
            monkeypatch.setenv(crypto.ENV_KEYS, value)

    return use


async def column(store: Any, backend: str, table: str, col: str, row_id: str) -> str:
    """A column's value as stored (no codec)."""
    text = f"SELECT {col} FROM {table} WHERE id = '{row_id}'"
    if backend == "postgres":
        async with store._pool.acquire() as conn:
            return str(await conn.fetchval(text))
    return str(await store._writer.call(lambda: store._writer.conn.execute(text).fetchone()[0]))


def records_of(store: base.Store, tmp_path: Path, clock: Any = None) -> Records:
    cfg = config.parse_config(
        {
            "gateway": {"store": f"sqlite:///{tmp_path}/unused.db"},
            "records": {"enabled": True, "dir": str(tmp_path / "records")},
        }
    )
    recs = Records(store=store, cfg=cfg, clock=clock or ManualClock(LATER), environ=os.environ)
    recs.open()
    return recs


async def live_record(store: base.Store, filing_id: str) -> dict[str, Any]:
    seqs = await store.live_seqs([filing_id])
    (rec,) = await store.archive_batch([seqs[filing_id]])
    return rec


async def test_payload_and_receipt_are_sealed_at_rest_and_read_in_clear(
    store: base.Store, backend: str, keys: Any
) -> None:
    keys(f"k1:{KEY1}")
    (claim,) = await deliver(store, new("ENC-1", payload={"importer": MARK}))
    assert claim.filing.payload == {"importer": MARK}  # what the dispatcher sends
    fid, did = claim.filing.id, claim.delivery_id
    payload = await column(store, backend, "filings", "payload", fid)
    receipt = await column(store, backend, "deliveries", "receipt", did)
    for value in (payload, receipt):
        assert value.startswith("edigw-sealed:1:k1:") and MARK not in value, value
    view = await store.get_filing(fid)
    assert view is not None and view.deliveries[0].receipt == {"ok": True}
    rec = await live_record(store, fid)
    assert MARK in rec["filing"]["payload"] and rec["deliveries"][0]["receipt"] == '{"ok": true}'


async def test_a_sealed_value_moved_to_another_row_does_not_open(
    store: base.Store, backend: str, keys: Any
) -> None:
    keys(f"k1:{KEY1}")
    one, two = await deliver(store, new("MV-1", payload={"a": 1}), new("MV-2", payload={"b": 2}))
    other = await column(store, backend, "filings", "payload", two.filing.id)
    await raw(
        store, backend, f"UPDATE filings SET payload = '{other}' WHERE id = '{one.filing.id}'"
    )
    with pytest.raises(rerrors.OpenFailed, match="'k1'"):
        await live_record(store, one.filing.id)
    assert (await live_record(store, two.filing.id))["filing"]["payload"] == '{"b":2}'


async def test_keys_rotate_and_start_refuses_a_missing_or_wrong_key(
    store: base.Store, backend: str, keys: Any
) -> None:
    keys(f"k1:{KEY1}")
    (old,) = await deliver(store, new("ROT-1", payload={"year": 2025}))
    keys(f"k1:{KEY1};k2:{KEY2}")  # a new key, listed last: current
    (young,) = await deliver(store, new("ROT-2", payload={"year": 2026}))
    for claim, kid in ((old, "k1"), (young, "k2")):
        stored = await column(store, backend, "filings", "payload", claim.filing.id)
        assert crypto.text_kid(stored) == kid
        assert (await live_record(store, claim.filing.id))["filing"]["payload"].startswith("{")
    assert await sealing.check_keys(store) == ["k1", "k2"]
    keys(f"k2:{KEY2}")  # the old key dropped while values still name it
    with pytest.raises(rerrors.KeyringError, match="'k1'") as caught:
        await sealing.check_keys(store)
    assert caught.value.kid == "k1"
    keys(f"k1:{KEY2};k2:{KEY2}")  # another key under k1's id
    with pytest.raises(rerrors.KeyringError, match="wrong key") as caught:
        await sealing.check_keys(store)
    assert caught.value.kid == "k1"
    keys(None)
    with pytest.raises(rerrors.KeyringError, match="no key is configured"):
        await sealing.check_keys(store)
    with pytest.raises(rerrors.KeyringError, match="no key is configured"):
        await live_record(store, old.filing.id)  # never handed back sealed


async def test_the_archive_holds_sealed_segments_and_restore_seals_again(
    store: base.Store, backend: str, keys: Any, tmp_path: Path
) -> None:
    keys(f"k1:{KEY1}")
    (fid,) = await finished(store, f"ARC-{MARK}")
    recs = records_of(store, tmp_path)
    mover = mover_mod.Mover(recs, store_url="sqlite:///unused")
    assert await mover.round() == 1
    (name,) = recs.storage.list()  # type: ignore[union-attr]
    seg = (tmp_path / "records" / "segments" / name).read_bytes()
    assert MARK.encode() not in seg and b'"key_id":"k1"' in seg
    shown = await recs.show(fid)
    assert shown["where"] == "archive" and MARK in shown["record"]["filing"]["payload"]
    await recs.restore(fid, reason="CBP asked", actor=ACTOR)
    stored = await column(store, backend, "filings", "payload", fid)
    assert stored.startswith("edigw-sealed:1:k1:") and MARK not in stored
    assert MARK in (await live_record(store, fid))["filing"]["payload"]
    recs.close()


async def test_serve_and_the_cli_refuse_to_start_without_the_key_in_use(
    tmp_path: Path, start_gateway: Any, keys: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A gateway seals with k1, and the filedrop receiver gets the plaintext; restarted
    without k1 (or with another key under its id), start-up stops naming k1; so does the
    CLI."""
    keys(f"k1:{KEY1}")
    cfg = base_config(tmp_path)
    gw = await start_gateway(cfg)
    event = example(reference="SRV-1")
    event["payload"]["importer_of_record"]["name"] = MARK
    status, body = await gw.post("/v1/filings", event)
    assert status == 202, body
    await gw.wait_for(body["id"], "delivered", timeout=60)
    sent = [p.read_text() for p in (tmp_path / "outbox").rglob("*") if p.is_file()]
    assert any(MARK in text for text in sent), sent  # the exact bytes sent: plaintext
    _, shown = await gw.get(f"/v1/records/{body['id']}")
    assert MARK in str(shown["record"]["filing"]["payload"])
    await gw.stop()
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        (stored,) = db.execute("SELECT payload FROM filings").fetchone()
    assert stored.startswith("edigw-sealed:1:k1:") and MARK not in stored
    for setting, words in ((None, "no key is configured"), (f"k1:{KEY2}", "wrong key")):
        keys(setting)
        with pytest.raises(rerrors.KeyringError, match=words) as caught:
            await start_gateway(cfg)
        assert caught.value.kid == "k1"
    cfg_path = tmp_path / "gateway.toml"
    cfg_path.write_text(f'[gateway]\nstore = "{cfg["gateway"]["store"]}"\n')
    keys(None)
    code = await anyio.to_thread.run_sync(main, ["records", "search", "-c", str(cfg_path)])
    err = capsys.readouterr().err
    assert code != 0 and "'k1'" in err, err
    keys(f"k1:{KEY1}")
    code = await anyio.to_thread.run_sync(main, ["records", "search", "-c", str(cfg_path)])
    assert code == 0, capsys.readouterr().err


async def test_a_text_payload_that_looks_sealed_is_kept_as_text_without_a_key(
    store: base.Store, backend: str, keys: Any
) -> None:
    """A client's text payload may start ``edigw-sealed:1:<kid>:`` or ``edigw-plain:``: with
    no key configured it reads back byte for byte, and the start check does not take it
    for a value sealed under a key nobody configured (that would refuse every restart)."""
    keys(None)
    texts = ["edigw-sealed:1:k9:AAAA", "edigw-plain:x", "edigw-plain:edigw-plain:y"]
    filings = []
    for n, text in enumerate(texts):
        item = new(f"TXT-{n}")
        as_text = {"payload": text, "content_type": "application/edi-x12"}
        filings.append(values.NewFiling(item.filing.model_copy(update=as_text), item.adapters))
    claims = await deliver(store, *filings)
    assert sorted(c.filing.payload for c in claims) == sorted(texts)  # what is sent
    for item, text in zip(filings, texts, strict=True):
        view = await store.get_filing(item.filing.id)
        assert view is not None
        assert (await live_record(store, item.filing.id))["filing"]["payload"] == text
    assert await sealing.check_keys(store) == []
