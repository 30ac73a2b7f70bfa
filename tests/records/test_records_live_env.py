"""``crypto.live`` follows the process environment as it is now (read from its own table
for speed): a key set, changed or removed takes effect on the next call."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from gateway.records import crypto


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_live_follows_the_environment_as_it_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key, then a key, then a second key made current, then none again."""
    for name in (crypto.ENV_KEYS, crypto.ENV_KEYS_FILE, crypto.ENV_KEY_ID):
        monkeypatch.delenv(name, raising=False)
    assert crypto.live() is None
    monkeypatch.setenv(crypto.ENV_KEYS, f"one:{_key()}")
    ring = crypto.live()
    assert ring is not None
    assert ring.current == "one"
    monkeypatch.setenv(crypto.ENV_KEYS, f"one:{_key()}\ntwo:{_key()}")
    monkeypatch.setenv(crypto.ENV_KEY_ID, "two")
    ring = crypto.live()
    assert ring is not None
    assert ring.current == "two"
    monkeypatch.delenv(crypto.ENV_KEYS)
    monkeypatch.delenv(crypto.ENV_KEY_ID)
    assert crypto.live() is None


def test_live_reads_a_key_file_named_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``EDIGW_RECORDS_KEYS_FILE`` names the file the keys are read from."""
    monkeypatch.delenv(crypto.ENV_KEYS, raising=False)
    monkeypatch.delenv(crypto.ENV_KEY_ID, raising=False)
    path = tmp_path / "keys"
    path.write_text(f"filed:{_key()}\n")
    monkeypatch.setenv(crypto.ENV_KEYS_FILE, str(path))
    ring = crypto.live()
    assert ring is not None
    assert ring.current == "filed"
