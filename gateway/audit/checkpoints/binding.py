"""Binding checkpoints to their chain: a chain's id is the hash of its row 1 (or, once
pruned, the id its prune record names), and ``ChainCheckpoints`` reads and writes only
that chain's checkpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import anyio

from gateway.audit import chain as audit
from gateway.audit.checkpoints.files import CheckpointDir
from gateway.audit.checkpoints.keys import store_label
from gateway.audit.checkpoints.signed import Checkpoint


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
