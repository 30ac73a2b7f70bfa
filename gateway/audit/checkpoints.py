"""Signed checkpoints of the audit trail, kept outside the database, one set per chain.

A hash chain cannot see its last rows cut off, so the gateway writes checkpoints: the
number of rows ever appended (the head row's seq) and the head hash, authenticated with
HMAC-SHA256. ``verify`` checks the chain against its checkpoints, so rows removed from
the tail (or a chain rewritten from some row on) are caught.

**Bound to their chain.** Several stores may share one checkpoint directory (the default
``var/audit-checkpoints`` is relative; CERT and production run from one directory; an
operator moves from SQLite to PostgreSQL or starts afresh with a new database). Each
chain's checkpoints would be false evidence against the others, so every checkpoint
names its chain and lives in the chain's own subdirectory,
``<dir>/chain-<first 16 hex of the id>/checkpoint-<seq>.json``. A chain's id is the hash
of its row 1 (what its first row chains to the genesis with; a later row's hash depends
on it, so no two chains share it). ``audit prune`` removes row 1, so it leaves a signed
*prune record* in the chain's subdirectory: the seq of the first row kept and the hash
it continues from, the same facts the ``audit.pruned`` row states; a pruned store is
recognised by its first row matching one. A chain pruned before prune records existed is
bound from its oldest row (its hash is then the id, until the next prune records it).
Each checkpoint also names its store (the URL without credentials), so ``verify`` can say
that another chain was once signed for the same database.

**Old checkpoints** (``version`` 1, from before checkpoints named their chain) sit at the
top of the directory. They are read for what they can still prove: one whose row is in
this chain with the same hash confirms it; one that does not match may be another chain's
or evidence of a cut or rewrite made before the upgrade. ``verify`` cannot tell which,
so it lists them in a warning instead of crying wolf (``audit_cli``). New ones are bound.

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
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio

from gateway import config, errors
from gateway.audit import chain as audit

KEY_FILE = "hmac.key"
_PREFIX = "checkpoint-"
_PRUNED = "pruned-"
_CHAIN = "chain-"
#: how many checkpoint files are kept per chain; older ones are removed as new ones come
KEEP = 200


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The head of the trail at one moment, as signed."""

    seq: int
    head: str
    at: str
    #: the chain's id (the hash of its row 1); None in an old, unbound (version 1) one
    chain: str | None = None
    #: the store the chain lives in, without credentials (what an operator recognises)
    store: str | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"version": 1, "seq": self.seq, "head": self.head, "at": self.at}
        if self.chain is not None:
            body.update(version=2, chain=self.chain, store=self.store)
        return body

    def signed(self, key: bytes) -> dict[str, Any]:
        body = self.body()
        return {**body, "hmac": _mac(key, body)}


@dataclass(frozen=True, slots=True)
class PruneRecord:
    """What ``audit prune`` left: the chain whose rows before ``first_seq`` were removed,
    and the hash its row ``first_seq`` continues from (as its ``audit.pruned`` row says)."""

    chain: str
    first_seq: int
    continues_from: str
    at: str

    def body(self) -> dict[str, Any]:
        return {
            "version": 2,
            "kind": "pruned",
            "chain": self.chain,
            "first_seq": self.first_seq,
            "continues_from": self.continues_from,
            "at": self.at,
        }


def _mac(key: bytes, body: dict[str, Any]) -> str:
    return hmac.new(key, audit.canonical(body).encode(), hashlib.sha256).hexdigest()


def _checked(data: Any, key: bytes) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError("a checkpoint is a JSON object")
    body = {k: v for k, v in data.items() if k != "hmac"}
    given = data.get("hmac")
    if not isinstance(given, str) or not hmac.compare_digest(given, _mac(key, body)):
        raise ValueError("checkpoint HMAC does not match (altered, or signed with another key)")
    return body


def authenticate(data: Any, key: bytes) -> Checkpoint:
    """The checkpoint in ``data`` if its HMAC is right; ``ValueError`` otherwise."""
    body = _checked(data, key)
    try:
        chain = body.get("chain")
        store = body.get("store")
        return Checkpoint(
            seq=int(body["seq"]),
            head=str(body["head"]),
            at=str(body["at"]),
            chain=None if chain is None else str(chain),
            store=None if store is None else str(store),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint is missing a field: {exc}") from exc


def _prune_record(data: Any, key: bytes) -> PruneRecord:
    body = _checked(data, key)
    try:
        return PruneRecord(
            chain=str(body["chain"]),
            first_seq=int(body["first_seq"]),
            continues_from=str(body["continues_from"]),
            at=str(body["at"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"prune record is missing a field: {exc}") from exc


_SECRET_PARAM = ("pass", "key", "secret", "token", "cert")


def store_label(url: str) -> str:
    """The store URL without user, password or secret parameters (``search_path`` stays:
    two schemas of one database are two stores)."""
    if url.startswith("sqlite:"):
        return url.partition("?")[0]  # a path: no credentials
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    query = urllib.parse.urlencode(
        [
            (k, v)
            for k, v in urllib.parse.parse_qsl(parts.query)
            if not any(word in k.lower() for word in _SECRET_PARAM)
        ]
    )
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, query, ""))


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
    """The checkpoint directory: a subdirectory per chain, written atomically; the old,
    unbound files at its top."""

    def __init__(self, path: Path, *, key: bytes) -> None:
        self.path = Path(path)
        self.key = key

    def chain_dir(self, chain: str | None) -> Path:
        """Where a chain's checkpoints go; the top for an unbound (old) checkpoint."""
        return self.path if chain is None else self.path / f"{_CHAIN}{chain[:16]}"

    def write(self, checkpoint: Checkpoint) -> Path:
        """Sign and write ``checkpoint`` into its chain's subdirectory, then trim it.
        (An unbound checkpoint goes to the top, where version 1 wrote them.)"""
        where = self.chain_dir(checkpoint.chain)
        target = self._write(where, f"{_PREFIX}{checkpoint.seq:012d}.json", checkpoint.body())
        for old in self._files(where)[:-KEEP]:
            old.unlink(missing_ok=True)
        return target

    def write_pruned(self, record: PruneRecord) -> Path:
        """Keep a prune record beside its chain's checkpoints (never trimmed)."""
        name = f"{_PRUNED}{record.first_seq:012d}.json"
        return self._write(self.chain_dir(record.chain), name, record.body())

    def _write(self, where: Path, name: str, body: dict[str, Any]) -> Path:
        where.mkdir(parents=True, exist_ok=True)
        target = where / name
        # a name of its own: replicas sharing the directory may write the same checkpoint
        tmp = where / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({**body, "hmac": _mac(self.key, body)}, fh, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        return target

    @staticmethod
    def _files(where: Path, prefix: str = _PREFIX) -> list[Path]:
        if not where.is_dir():
            return []
        return sorted(where.glob(f"{prefix}*.json"))

    def load(self, chain: str | None = None) -> tuple[list[Checkpoint], list[str]]:
        """A chain's authentic checkpoints, oldest first, and a problem line per bad file
        (``chain=None``: the old, unbound ones at the top). A file in a chain's directory
        that names another chain is a bad file: checkpoints are not moved about."""
        good: list[Checkpoint] = []
        bad: list[str] = []
        where = self.chain_dir(chain)
        for file in self._files(where):
            name = file.name if chain is None else f"{where.name}/{file.name}"
            try:
                cp = authenticate(json.loads(file.read_text()), self.key)
            except (OSError, ValueError) as exc:
                bad.append(f"{name}: {exc}")
                continue
            if cp.chain != chain:
                bad.append(f"{name}: signed for chain {cp.chain}, found in chain {chain}'s place")
            else:
                good.append(cp)
        return sorted(good, key=lambda c: c.seq), bad

    def newest(self, chain: str | None = None) -> Checkpoint | None:
        found, _ = self.load(chain)
        return found[-1] if found else None

    def chains(self) -> dict[str, Checkpoint | None]:
        """Every chain with a subdirectory here: its full id (or the directory's name when
        no checkpoint in it authenticates) and its newest authentic checkpoint."""
        found: dict[str, Checkpoint | None] = {}
        for sub in sorted(self.path.glob(f"{_CHAIN}*")) if self.path.is_dir() else []:
            newest = None
            for file in reversed(self._files(sub)):
                try:
                    newest = authenticate(json.loads(file.read_text()), self.key)
                    break
                except (OSError, ValueError):
                    continue
            found[newest.chain if newest and newest.chain else sub.name] = newest
        return found

    def chain_of_pruned(self, first_seq: int, continues_from: str) -> str | None:
        """The chain whose prune record says its kept rows start at ``first_seq``,
        continuing from ``continues_from``; None if no authentic record says so."""
        for file in self.path.glob(f"{_CHAIN}*/{_PRUNED}{first_seq:012d}.json"):
            try:
                record = _prune_record(json.loads(file.read_text()), self.key)
            except (OSError, ValueError):
                continue
            if record.first_seq == first_seq and record.continues_from == continues_from:
                return record.chain
        return None


class TrailHead(Protocol):
    """What binding needs of a store: its trail, read from the start."""

    def audit_rows(self, *, after_seq: int = 0) -> AsyncIterator[audit.AuditRow]: ...


async def first_row(store: TrailHead) -> audit.AuditRow | None:
    rows = store.audit_rows()
    try:
        async for row in rows:
            return row
        return None
    finally:
        await rows.aclose()  # type: ignore[attr-defined]


async def chain_id(store: TrailHead, directory: CheckpointDir) -> str | None:
    """The id of the store's chain (see the module's doc); None while its trail is empty."""
    first = await first_row(store)
    if first is None:
        return None
    if first.seq == 1:
        return first.hash
    recorded = await anyio.to_thread.run_sync(directory.chain_of_pruned, first.seq, first.prev_hash)
    # pruned before prune records existed: bound from its oldest row until the next prune
    return recorded or first.hash


class ChainCheckpoints:
    """The checkpoints of one store's chain, as the server writes them: the chain's id is
    learnt from the store when first needed (a fresh store has no row 1 yet)."""

    def __init__(self, directory: CheckpointDir, *, store: TrailHead, store_url: str) -> None:
        self.directory = directory
        self.store = store
        self.label = store_label(store_url)
        self.chain: str | None = None

    async def bind(self) -> str | None:
        if self.chain is None:
            self.chain = await chain_id(self.store, self.directory)
        return self.chain

    async def newest(self) -> Checkpoint | None:
        chain = await self.bind()
        if chain is None:
            return None
        return await anyio.to_thread.run_sync(self.directory.newest, chain)

    async def write(self, *, seq: int, head: str, at: str) -> Checkpoint | None:
        """Sign the head into the chain's subdirectory (None while the trail is empty)."""
        chain = await self.bind()
        if chain is None:
            return None
        cp = Checkpoint(seq=seq, head=head, at=at, chain=chain, store=self.label)
        await anyio.to_thread.run_sync(self.directory.write, cp)
        return cp
