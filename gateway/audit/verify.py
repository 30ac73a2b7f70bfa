"""``edi-gateway audit verify``: the chain in the store against its own checkpoints.

The chain is streamed from the store (constant memory). Only the checkpoints bound to
this chain (``gateway.audit.checkpoints``) are evidence against it; the checkpoint directory
may also hold other chains' (another database, CERT beside production): they are named
in a warning and never checked against this chain. Old, unbound checkpoints confirm the
rows they match and are listed, not trusted, when they match nothing (they may be
another chain's). ``verify --file`` checks an export offline.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from gateway import config
from gateway.audit import chain as audit
from gateway.audit import checkpoints


def key_or_warn(cfg: config.Config, *, create: bool) -> bytes | None:
    """The HMAC key; a warning on stderr when one had to be generated."""
    key, source = checkpoints.load_key(cfg, create=create)
    if source == "generated":
        print(
            f"warning: generated an audit HMAC key in "
            f"{checkpoints.directory(cfg) / checkpoints.KEY_FILE}; "
            "set EDIGW_AUDIT__HMAC_KEY instead",
            file=sys.stderr,
        )
    return key


@dataclass
class Evidence:
    """What the checkpoint directory says about one chain."""

    chain: str | None
    #: this chain's authentic checkpoints, oldest first
    signed: list[checkpoints.Checkpoint] = field(default_factory=list)
    #: this chain's files that do not authenticate: an alarm
    bad: list[str] = field(default_factory=list)
    #: old, unbound checkpoints, and the unbound files that do not authenticate
    unbound: list[checkpoints.Checkpoint] = field(default_factory=list)
    unbound_bad: list[str] = field(default_factory=list)
    #: other chains' ids and their newest checkpoints: not evidence here
    others: dict[str, checkpoints.Checkpoint | None] = field(default_factory=dict)


async def gather(
    store: checkpoints.TrailHead, directory: checkpoints.CheckpointDir | None
) -> Evidence:
    """Bind the store's chain and sort the directory's checkpoints by whose they are."""
    if directory is None:  # no key: nothing in the directory can be authenticated
        first = await checkpoints.first_row(store)
        return Evidence(chain=first.hash if first and first.seq == 1 else None)
    chain = await checkpoints.chain_id(store, directory)

    def _read() -> Evidence:
        found = Evidence(chain=chain)
        if chain is not None:
            found.signed, found.bad = directory.load(chain)
        found.unbound, found.unbound_bad = directory.load(None)
        found.others = {c: cp for c, cp in directory.chains().items() if c != chain}
        return found

    return await anyio.to_thread.run_sync(_read)


@dataclass
class Unbound:
    """How the old, unbound checkpoints compare with this chain."""

    by_seq: dict[int, list[checkpoints.Checkpoint]]
    confirmed: int = 0
    unmatched: list[int] = field(default_factory=list)

    def see(self, row: audit.AuditRow) -> None:
        for cp in self.by_seq.pop(row.seq, ()):
            if cp.head == row.hash:
                self.confirmed += 1
            else:
                self.unmatched.append(cp.seq)

    def finish(self) -> None:  # beyond this chain's head
        self.unmatched.extend(seq for seq, cps in self.by_seq.items() for _ in cps)
        self.by_seq = {}


async def walk(
    store: checkpoints.TrailHead,
    signed: list[checkpoints.Checkpoint],
    unbound: Sequence[checkpoints.Checkpoint] = (),
    *,
    purged: Sequence[tuple[int, int]] = (),
) -> tuple[audit.VerifyResult, Unbound]:
    """Stream the chain through the verifier, against ``signed`` only. ``store`` may be
    the live store and its archive together (``gateway.service.records_chain``): a row
    it cannot hand over (a segment missing or altered) fails the walk there; ``purged``:
    the seq spans of purged segments."""
    verifier = audit.ChainVerifier(checkpoints={c.seq: c.head for c in signed}, purged=purged)
    by_seq: dict[int, list[checkpoints.Checkpoint]] = defaultdict(list)
    for cp in unbound:
        by_seq[cp.seq].append(cp)
    old = Unbound(dict(by_seq))
    rows = store.audit_rows()
    try:
        async for row in rows:
            if not verifier.feed(row):
                break
            if old.by_seq:
                old.see(row)
    except audit.RowsUnreadable as exc:
        verifier.unreadable(exc)
    finally:
        await rows.aclose()  # type: ignore[attr-defined]
    result = verifier.finish()
    if result.ok:
        old.finish()
    return result, old


def notes(ev: Evidence, old: Unbound, store_url: str, directory: Path) -> list[str]:
    """The plain words about checkpoints that are not this chain's."""
    notes: list[str] = []
    label = checkpoints.store_label(store_url)
    if ev.others:
        described = "; ".join(
            f"chain {c[:16]}…"
            + (f" (store {cp.store}, row {cp.seq} signed at {cp.at})" if cp else "")
            for c, cp in ev.others.items()
        )
        notes.append(
            f"{directory} also holds the checkpoints of {len(ev.others)} other chain(s), "
            f"not checked against this one: {described}"
        )
        same = [c for c, cp in ev.others.items() if cp is not None and cp.store == label]
        if same:
            notes.append(
                f"chain {same[0][:16]}… was signed for this same store ({label}): if this "
                "database was not replaced or started afresh, this chain was rewritten from "
                "its first row"
            )
    if old.unmatched:
        seqs = ", ".join(str(s) for s in sorted(old.unmatched)[:10])
        notes.append(
            f"{len(old.unmatched)} unbound checkpoint(s) (written before checkpoints named "
            f"their chain, at the top of {directory}) match no row of this chain (rows "
            f"{seqs}): another chain's, or this chain was cut or rewritten before the "
            "upgrade; verify cannot tell which. Checkpoints written since are bound."
        )
    if ev.unbound_bad:
        notes.append(
            f"{len(ev.unbound_bad)} unbound checkpoint file(s) do not authenticate (another "
            f"key, or altered): {ev.unbound_bad[0]}"
        )
    return notes
