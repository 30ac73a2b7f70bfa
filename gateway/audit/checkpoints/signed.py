"""The signed documents: a checkpoint (a chain's head, seq and hash, bound to its chain
and store) and a prune record (where a pruned chain continues from), each with an
HMAC-SHA256 over its canonical JSON, and reading them back only when the MAC holds."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from gateway.audit import chain as audit

KEY_FILE = "hmac.key"
CHECKPOINT_PREFIX = "checkpoint-"
PRUNED_PREFIX = "pruned-"
CHAIN_PREFIX = "chain-"
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
        return {**body, "hmac": mac(key, body)}


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


def mac(key: bytes, body: dict[str, Any]) -> str:
    return hmac.new(key, audit.canonical(body).encode(), hashlib.sha256).hexdigest()


def _checked(data: Any, key: bytes) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError("a checkpoint is a JSON object")
    body = {k: v for k, v in data.items() if k != "hmac"}
    given = data.get("hmac")
    if not isinstance(given, str) or not hmac.compare_digest(given, mac(key, body)):
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


def prune_record(data: Any, key: bytes) -> PruneRecord:
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
