"""The checkpoint directory on disk: one subdirectory per chain, files written atomically
and the oldest removed past ``KEEP``; the old, unbound files at its top."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from gateway.audit.checkpoints.signed import (
    CHAIN_PREFIX,
    CHECKPOINT_PREFIX,
    KEEP,
    PRUNED_PREFIX,
    Checkpoint,
    PruneRecord,
    authenticate,
    mac,
    prune_record,
)


class CheckpointDir:
    """The checkpoint directory: a subdirectory per chain, written atomically; the old,
    unbound files at its top."""

    def __init__(self, path: Path, *, key: bytes) -> None:
        self.path = Path(path)
        self.key = key

    def chain_dir(self, chain: str | None) -> Path:
        """Where a chain's checkpoints go; the top for an unbound (old) checkpoint."""
        return self.path if chain is None else self.path / f"{CHAIN_PREFIX}{chain[:16]}"

    def write(self, checkpoint: Checkpoint) -> Path:
        """Sign and write ``checkpoint`` into its chain's subdirectory, then trim it.
        (An unbound checkpoint goes to the top, where version 1 wrote them.)"""
        where = self.chain_dir(checkpoint.chain)
        target = self._write(
            where, f"{CHECKPOINT_PREFIX}{checkpoint.seq:012d}.json", checkpoint.body()
        )
        for old in self._files(where)[:-KEEP]:
            old.unlink(missing_ok=True)
        return target

    def write_pruned(self, record: PruneRecord) -> Path:
        """Keep a prune record beside its chain's checkpoints (never trimmed)."""
        name = f"{PRUNED_PREFIX}{record.first_seq:012d}.json"
        return self._write(self.chain_dir(record.chain), name, record.body())

    def _write(self, where: Path, name: str, body: dict[str, Any]) -> Path:
        where.mkdir(parents=True, exist_ok=True)
        target = where / name
        # a name of its own: replicas sharing the directory may write the same checkpoint
        tmp = where / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({**body, "hmac": mac(self.key, body)}, fh, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        return target

    @staticmethod
    def _files(where: Path, prefix: str = CHECKPOINT_PREFIX) -> list[Path]:
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
        for sub in sorted(self.path.glob(f"{CHAIN_PREFIX}*")) if self.path.is_dir() else []:
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
        for file in self.path.glob(f"{CHAIN_PREFIX}*/{PRUNED_PREFIX}{first_seq:012d}.json"):
            try:
                record = prune_record(json.loads(file.read_text()), self.key)
            except (OSError, ValueError):
                continue
            if record.first_seq == first_seq and record.continues_from == continues_from:
                return record.chain
        return None
