"""Records (issue 20): search, show, restore, verify, holds and purge over the live store
and the archive, for the API and the CLI. The mover that fills the archive is ``mover``.
One search answers over both, merged newest first by time of receipt, with one cursor
(``records_search``). A filing restored from the archive is live again and is shown once,
as live (with its history from the segments: ``records_chain``)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import anyio

from gateway import config, errors, values
from gateway.clock import Clock
from gateway.records import crypto, index, retention, segment, storage, verify
from gateway.records import errors as rerrors
from gateway.records.query import from_micros
from gateway.service import records_chain, records_search
from gateway.service.records_search import FIELDS as FIELDS
from gateway.service.records_search import Search as Search
from gateway.store import base

#: may a caller see a record of (filer code, environment)? (a token's scope)
Visible = Callable[[str, str], bool]


def facts(filing: Mapping[str, Any]) -> retention.Facts:
    """What retention decides on, from an archived (or live) filing row."""
    return retention.Facts(
        filing_id=str(filing["id"]),
        filing_type=str(filing["filing_type"]),
        environment=str(filing["environment"]),
        reference=str(filing["reference"]),
        filer_code=str(filing["filer_code"]),
        received_at=from_micros(int(filing["received_at"])),
        finished_at=from_micros(int(filing["updated_at"])),
    )


class Records:
    """The records of one gateway: its store and (when configured) its archive."""

    def __init__(
        self,
        *,
        store: base.Store,
        cfg: config.Config,
        clock: Clock,
        environ: Mapping[str, str],
    ) -> None:
        self.store = store
        self.clock = clock
        self.section = cfg.records
        self.keyring = crypto.load_keyring(environ)
        self.rules = self.section.rules()
        self.root = self.section.directory(cfg.gateway.store)
        self.storage: storage.DirectoryStorage | None = None
        self.index: index.Index | None = None

    def open(self) -> None:
        """Open the archive (when enabled, or when it exists: search and restore work with
        the mover off); creates the directory when enabled."""
        if self.storage is None and (self.section.enabled or self.root.exists()):
            self.storage = storage.DirectoryStorage(self.root / "segments")
            self.index = index.Index(self.root / "index.sqlite", rules=self.section.field_rules())

    def close(self) -> None:
        if self.index is not None:
            self.index.close()
            self.index = None
        self.storage = None

    def archive(self) -> tuple[storage.DirectoryStorage, index.Index]:
        self.open()
        if self.storage is None or self.index is None:
            raise errors.Conflict(
                f"no records archive at {self.root} ([records] enabled = false)",
                details={"dir": str(self.root)},
            )
        return self.storage, self.index

    async def entered(self) -> dict[str, str]:
        """{segment: sha256} of the segments entered and not purged."""
        return {r[0]: r[1] for r in await self.store.archive_segments() if r[6] is None}

    async def policy(self) -> retention.Policy:
        holds = [
            retention.Hold(
                id=r[0],
                kind=retention.HoldKind(r[1]),
                value=r[2],
                reason=r[3],
                placed_at=from_micros(r[4]),
                released_at=None if r[6] is None else from_micros(r[6]),
            )
            for r in await self.store.record_holds()
        ]
        return retention.Policy(self.rules, holds)

    # --- search and show --------------------------------------------------------------------

    async def search(self, s: Search) -> tuple[list[dict[str, Any]], str | None]:
        """One page over live and archive, newest first; (items, next cursor or None)."""
        return await records_search.search(self, s)

    async def show(self, filing_id: str, visible: Visible | None = None) -> dict[str, Any]:
        """A filing's whole record (every row, the exact payload sent), live or archived;
        one ``visible`` refuses is answered as a missing one (404, the same words)."""
        seqs = await self.store.live_seqs([filing_id])
        name: str | None = None
        if filing_id in seqs:
            (rec,) = await self.store.archive_batch([seqs[filing_id]])
        else:
            name, rec = await self._archived(filing_id)
        f = rec["filing"]
        if visible is not None and not visible(str(f["filer_code"]), str(f["environment"])):
            raise _missing(filing_id)
        rec = {**rec, "audit": await records_chain.history(self, filing_id, rec["audit"], name)}
        where = "live" if name is None else "archive"
        return {"id": filing_id, "where": where, "segment": name, "record": rec}

    async def _archived(self, filing_id: str) -> tuple[str, dict[str, Any]]:
        self.open()
        if self.storage is None or self.index is None:
            raise _missing(filing_id)  # no archive: no archived record
        store, idx = self.storage, self.index
        hit = await anyio.to_thread.run_sync(idx.locate, filing_id)
        if hit is None:
            raise _missing(filing_id)
        sha = (await self.entered()).get(hit.segment)
        opened = await anyio.to_thread.run_sync(
            functools.partial(
                segment.open_segment, store, hit.segment, keyring=self.keyring, expected_sha256=sha
            )
        )
        return hit.segment, opened.record(filing_id)

    # --- restore, holds, verify, purge ------------------------------------------------------

    async def restore(
        self, filing_id: str, *, reason: str, actor: values.Actor, visible: Visible | None = None
    ) -> dict[str, Any]:
        if not reason.strip():
            raise rerrors.BadQuery("say why (it goes into the audit trail)", field="reason")
        if visible is not None:
            await self.show(filing_id, visible)  # outside the caller's scope: 404
        if await self.store.live_seqs([filing_id]):
            raise errors.Conflict(f"filing {filing_id} is live already", details={"id": filing_id})
        name, rec = await self._archived(filing_id)
        await self.store.archive_restore(rec, name, reason, actor, self.clock.now())
        return {"id": filing_id, "restored_from": name, "reason": reason}

    async def place_hold(self, kind: str, value: str, reason: str, actor: values.Actor) -> str:
        if kind not in set(retention.HoldKind):
            known = ", ".join(retention.HoldKind)
            raise rerrors.BadQuery(f"one of {known}", field="kind")
        if not value.strip() or not reason.strip():
            raise rerrors.BadQuery("required", field="value" if not value.strip() else "reason")
        return str(await self.store.place_hold(kind, value, reason, actor, self.clock.now()))

    async def release_hold(self, hold_id: str, reason: str, actor: values.Actor) -> None:
        await self.store.release_hold(hold_id, reason, actor, self.clock.now())

    async def holds(self) -> list[dict[str, Any]]:
        keys = ("id", "kind", "value", "reason", "placed_at", "placed_by")
        out = []
        for r in await self.store.record_holds():
            item = dict(zip(keys, r[:6], strict=True))
            item["placed_at"] = from_micros(r[4]).isoformat()
            item["released_at"] = None if r[6] is None else from_micros(r[6]).isoformat()
            item["released_by"] = r[7]
            out.append(item)
        return out

    async def verify(self, *, deep: bool = False) -> verify.Report:
        """The archive's segments against the segments entered, and those against the
        chain's ``records.archived`` / ``records.purged`` rows (those not pruned)."""
        store, _ = self.archive()
        entered = await self.entered()
        report = await anyio.to_thread.run_sync(
            functools.partial(
                verify.verify, store, list(entered.items()), keyring=self.keyring, deep=deep
            )
        )
        chained: dict[str, str] = {}
        async for row in self.store.audit_rows():
            if row.event == "records.archived":
                chained[str(row.details.get("segment"))] = str(row.details.get("sha256"))
            elif row.event == "records.purged":
                chained.pop(str(row.details.get("segment")), None)
        for name, sha in sorted(chained.items()):
            if entered.get(name) != sha:
                message = f"segment {name}: the audit chain enters {sha[:16]}…, the store lists "
                message += "it purged or not at all" if name not in entered else "another hash"
                report.problems.append(
                    verify.Problem(segment=name, kind="altered", message=message)
                )
        return report

    async def purge(self, *, dry_run: bool, actor: values.Actor) -> list[dict[str, Any]]:
        """Segments whose every record is past retention and not held: listed (dry run),
        or marked purged (audited), deleted and taken out of the index."""
        store, idx = self.archive()
        now = self.clock.now()
        policy = await self.policy()
        out = []
        for name, sha in sorted((await self.entered()).items()):
            seg = await anyio.to_thread.run_sync(
                functools.partial(
                    segment.open_segment, store, name, keyring=self.keyring, expected_sha256=sha
                )
            )
            verdicts = [policy.decide(facts(rec["filing"]), now) for rec in seg]
            if not verdicts or any(v.decision is not retention.Decision.PURGE for v in verdicts):
                continue
            out.append({"segment": name, "sha256": sha, "records": len(verdicts)})
            if not dry_run:
                await self.store.archive_purged(name, sha, len(verdicts), actor, now)
                await anyio.to_thread.run_sync(store.delete, name)
                await anyio.to_thread.run_sync(idx.remove, name)
        return out


def _missing(filing_id: str) -> errors.NotFound:
    return errors.NotFound(f"no record {filing_id}", details={"id": filing_id})


__all__ = ["FIELDS", "Records", "Search"]
