"""Signed checkpoints of the audit trail, kept outside the database.

A hash chain cannot see its last rows cut off, so the gateway writes checkpoints: the
number of rows ever appended (the head row's seq) and the head hash, authenticated with
HMAC-SHA256. ``verify`` checks the chain against every checkpoint it finds, so rows
removed from the tail (or a chain rewritten from some row on) are caught.

The key comes from ``EDIGW_AUDIT__HMAC_KEY`` (``[audit] hmac_key``); without one, a
random key is generated once into ``<checkpoint_dir>/hmac.key`` (mode 0600) with a
warning: keep it — or better, set the variable — since whoever holds the key can
sign a checkpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway import audit, config, errors

KEY_FILE = "hmac.key"
_PREFIX = "checkpoint-"
#: how many checkpoint files are kept; older ones are removed as new ones are written
KEEP = 200


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The head of the trail at one moment, as signed."""

    seq: int
    head: str
    at: str

    def body(self) -> dict[str, Any]:
        return {"version": 1, "seq": self.seq, "head": self.head, "at": self.at}

    def signed(self, key: bytes) -> dict[str, Any]:
        body = self.body()
        return {**body, "hmac": _mac(key, body)}


def _mac(key: bytes, body: dict[str, Any]) -> str:
    return hmac.new(key, audit.canonical(body).encode(), hashlib.sha256).hexdigest()


def authenticate(data: Any, key: bytes) -> Checkpoint:
    """The checkpoint in ``data`` if its HMAC is right; ``ValueError`` otherwise."""
    if not isinstance(data, dict):
        raise ValueError("a checkpoint is a JSON object")
    body = {k: v for k, v in data.items() if k != "hmac"}
    given = data.get("hmac")
    if not isinstance(given, str) or not hmac.compare_digest(given, _mac(key, body)):
        raise ValueError("checkpoint HMAC does not match (altered, or signed with another key)")
    try:
        return Checkpoint(seq=int(body["seq"]), head=str(body["head"]), at=str(body["at"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint is missing a field: {exc}") from exc


def default_dir(store_url: str) -> Path:
    """``audit-checkpoints/`` beside the SQLite file; ``var/audit-checkpoints`` otherwise."""
    if store_url.startswith("sqlite:///"):
        path = store_url.removeprefix("sqlite:///").partition("?")[0]
        return Path(path).parent / "audit-checkpoints"
    return Path("var/audit-checkpoints")


def directory(cfg: config.Config) -> Path:
    return Path(cfg.audit.checkpoint_dir or default_dir(cfg.gateway.store))


def load_key(cfg: config.Config, *, create: bool) -> tuple[bytes | None, str]:
    """The HMAC key and where it came from: ``env``, ``file``, ``generated`` or ``none``."""
    if cfg.audit.hmac_key is not None:
        secret = cfg.audit.hmac_key.get_secret_value()
        if len(secret) < 16:
            raise errors.ConfigError(
                "audit.hmac_key: use at least 16 characters", key="audit.hmac_key"
            )
        return secret.encode(), "env"
    path = directory(cfg) / KEY_FILE
    try:
        return bytes.fromhex(path.read_text().strip()), "file"
    except FileNotFoundError:
        if not create:
            return None, "none"
    except (OSError, ValueError) as exc:
        raise errors.ConfigError(f"audit key file {path}: unreadable: {exc}") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex() + "\n")
    return key, "generated"


class CheckpointDir:
    """Checkpoint files in one directory: ``checkpoint-<seq>.json``, written atomically."""

    def __init__(self, path: Path, *, key: bytes) -> None:
        self.path = Path(path)
        self.key = key

    def write(self, checkpoint: Checkpoint) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / f"{_PREFIX}{checkpoint.seq:012d}.json"
        tmp = target.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(checkpoint.signed(self.key), fh, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        self._trim()
        return target

    def _files(self) -> list[Path]:
        if not self.path.is_dir():
            return []
        return sorted(self.path.glob(f"{_PREFIX}*.json"))

    def _trim(self) -> None:
        for old in self._files()[:-KEEP]:
            old.unlink(missing_ok=True)

    def load(self) -> tuple[list[Checkpoint], list[str]]:
        """Every authentic checkpoint, oldest first, and a problem line per bad file."""
        good: list[Checkpoint] = []
        bad: list[str] = []
        for file in self._files():
            try:
                good.append(authenticate(json.loads(file.read_text()), self.key))
            except (OSError, ValueError) as exc:
                bad.append(f"{file.name}: {exc}")
        return sorted(good, key=lambda c: c.seq), bad

    def newest(self) -> Checkpoint | None:
        found, _ = self.load()
        return found[-1] if found else None
