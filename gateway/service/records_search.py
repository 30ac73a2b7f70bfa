"""The records search (issue 20): one page over the live store and the archive, merged
newest first by time of receipt.

Each page reads the live filings from where the cursor left them (the store's listing,
newest first, filtered by payload identifiers when the search names any; by reference
alone, the reference index answers at once) and the archive's index from where it left
that (newest first), and takes from the two heads the newer each time, until ``limit``
items or until one side's head is unknown (its reader stopped before the end: a live
listing whose pages held no match, ``LIVE_PAGES`` of them). Its cursor is one opaque token
naming where each side stands — the live listing's keyset (the last seq taken) and the
index's (received time, record) — so a page starts exactly after the last item the one
before showed, whatever the other side held. A page may hold fewer items than ``limit``;
follow ``next_cursor`` until it is null. A filing live again (restored) is shown once, as
live: the archive's hits that are live are skipped.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

import anyio

from gateway import models, values
from gateway.config.records import RecordsSection
from gateway.records import errors as rerrors
from gateway.records import extract, index
from gateway.records.query import from_micros
from gateway.store import base

#: the identifier fields a search names (any configured ``[records.fields]`` field too)
FIELDS = ("reference", "entry_number", "bill_of_lading", "isf_transaction_number", "ack_code")
#: live pages read at most per search call before it answers (with a cursor) anyway
LIVE_PAGES = 20


@dataclass(frozen=True, kw_only=True)
class Search:
    """A records search; every filter given must hold."""

    terms: Mapping[str, str] = field(default_factory=dict)
    filer_code: str | None = None
    filing_type: str | None = None
    environment: str | None = None
    #: the filing's status (delivered, acknowledged, rejected, dead, cancelled, …)
    state: str | None = None
    received_from: datetime | None = None
    received_to: datetime | None = None
    limit: int = 50
    cursor: str | None = None
    #: a token's scope: only these filer codes / environments (None: all)
    filer_codes: tuple[str, ...] | None = None
    environments: tuple[str, ...] | None = None


class Archive(Protocol):
    """What the search needs of ``gateway.service.records.Records``."""

    store: base.Store
    section: RecordsSection
    index: index.Index | None

    def open(self) -> None: ...


def summary(filing: Mapping[str, Any], where: str, seg: str | None = None) -> dict[str, Any]:
    return {
        "id": filing["id"],
        "filing_type": filing["filing_type"],
        "environment": filing["environment"],
        "reference": filing["reference"],
        "filer_code": filing["filer_code"],
        "state": filing["status"],
        "received_at": from_micros(int(filing["received_at"])).isoformat(),
        "where": where,
        "segment": seg,
    }


@dataclass(frozen=True)
class Position:
    """Where each side stands: a cursor (None: from the start) or done."""

    live: str | None = None
    live_done: bool = False
    archive: str | None = None
    archive_done: bool = False

    def token(self) -> str | None:
        if self.live_done and self.archive_done:
            return None
        data = [self.live, self.live_done, self.archive, self.archive_done]
        return base64.urlsafe_b64encode(b"M" + json.dumps(data).encode()).decode().rstrip("=")

    @classmethod
    def of(cls, cursor: str | None) -> Position:
        if cursor is None:
            return cls()
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            if raw[:1] != b"M":
                raise ValueError(cursor)
            live, live_done, arch, arch_done = json.loads(raw[1:])
            if not all(isinstance(c, str | None) for c in (live, arch)):
                raise ValueError(cursor)
            return cls(live, bool(live_done), arch, bool(arch_done))
        except (ValueError, TypeError):
            raise rerrors.BadQuery("not a cursor this gateway handed out", field="cursor") from None


async def search(rec: Archive, s: Search) -> tuple[list[dict[str, Any]], str | None]:
    """One page over live and archive, newest first; (items, next cursor or None)."""
    if not 1 <= s.limit <= 500:
        raise rerrors.BadQuery("between 1 and 500", field="limit")
    for name, value in s.terms.items():
        if not extract.FIELD_NAME.fullmatch(name):
            raise rerrors.BadQuery("not a search field", field=name)
        if not extract.normalize(value):
            raise rerrors.BadQuery("empty", field=name)
    at = Position.of(s.cursor)
    live: list[tuple[dict[str, Any], int]] = []
    live_next: str | None = None
    if not at.live_done:
        live, live_next = await _live(rec, s, at.live)
    rec.open()
    hits: list[tuple[dict[str, Any], str]] = []
    arch_next: str | None = None
    if not at.archive_done and rec.index is not None:
        hits, arch_next = await _archived(rec, s, at.archive)
    out: list[dict[str, Any]] = []
    i = j = 0
    while len(out) < s.limit:
        lh = live[i][0] if i < len(live) else None
        ah = hits[j][0] if j < len(hits) else None
        if (lh is None and live_next is not None) or (ah is None and arch_next is not None):
            break  # that side's next item is unknown: it may be newer than the other's
        if lh is None and ah is None:
            break
        if ah is None or (lh is not None and _when(lh) >= _when(ah)):
            out.append(lh)  # type: ignore[arg-type]
            i += 1
        else:
            out.append(ah)
            j += 1
    nxt = Position(
        live=live_next
        if i == len(live)
        else values.encode_cursor(live[i - 1][1])
        if i
        else at.live,
        live_done=at.live_done or (i == len(live) and live_next is None),
        archive=arch_next if j == len(hits) else hits[j - 1][1] if j else at.archive,
        archive_done=at.archive_done or rec.index is None or (j == len(hits) and arch_next is None),
    )
    return out, nxt.token()


def _when(item: Mapping[str, Any]) -> tuple[datetime, str]:
    return datetime.fromisoformat(str(item["received_at"])), str(item["id"])


async def _archived(
    rec: Archive, s: Search, cursor: str | None
) -> tuple[list[tuple[dict[str, Any], str]], str | None]:
    """The index's next page: (item, the cursor just after it) of the hits not live, and
    the cursor after the page (None: the end)."""
    assert rec.index is not None
    query = index.Query(
        terms=dict(s.terms),
        filing_type=s.filing_type,
        environment=s.environment,
        filer_code=s.filer_code,
        state=s.state,
        filer_codes=s.filer_codes,
        environments=s.environments,
        received_from=s.received_from,
        received_to=s.received_to,
        limit=s.limit,
        cursor=cursor,
    )
    page = await anyio.to_thread.run_sync(rec.index.search, query)
    live = await rec.store.live_seqs([h.filing_id for h in page.hits])
    out = []
    for h, after in zip(page.hits, page.after, strict=True):
        if h.filing_id not in live:
            item = {
                "id": h.filing_id,
                "filing_type": h.filing_type,
                "environment": h.environment,
                "reference": h.reference,
                "filer_code": h.filer_code,
                "state": h.state,
                "received_at": h.received_at.isoformat(),
                "where": "archive",
                "segment": h.segment,
            }
            out.append((item, after))
    return out, page.next_cursor


async def _live(
    rec: Archive, s: Search, cursor: str | None
) -> tuple[list[tuple[dict[str, Any], int]], str | None]:
    """Matches among live filings after ``cursor``, a listing page at a time: (item, its
    seq) newest first, and the listing's cursor after what was read (None: the end)."""
    try:
        flt = values.ListFilter(
            status=None if s.state is None else models.FilingStatus(s.state),
            filing_type=None if s.filing_type is None else models.FilingType(s.filing_type),
            environment=None if s.environment is None else models.Environment(s.environment),
            since=s.received_from,
            until=s.received_to,
            filer_codes=s.filer_codes,
            environments=s.environments,
        )
    except ValueError:
        return [], None  # a value no live filing can have: the archive may still
    out: list[dict[str, Any]] = []
    if set(s.terms) == {"reference"}:  # by the reference column's index, no scan
        for ref in await rec.store.live_references(extract.normalize(s.terms["reference"])):
            page = await rec.store.list_filings(
                replace(flt, reference=ref), limit=s.limit + 1, cursor=cursor
            )
            out += [_view_summary(v) for v in page.items if s.filer_code in (None, v.filer_code)]
        seqs = await rec.store.live_seqs([i["id"] for i in out])
        ordered = sorted(((i, seqs[i["id"]]) for i in out if i["id"] in seqs), key=lambda x: -x[1])
        more = len(ordered) > s.limit
        return ordered[: s.limit], values.encode_cursor(ordered[s.limit - 1][1]) if more else None
    rules = rec.section.field_rules()
    for _ in range(LIVE_PAGES):
        page = await rec.store.list_filings(flt, limit=s.limit, cursor=cursor)
        cursor = page.next_cursor
        views = [v for v in page.items if s.filer_code in (None, v.filer_code)]
        if s.terms and views:
            seqs = await rec.store.live_seqs([v.id for v in views])
            recs = await rec.store.archive_batch(sorted(seqs.values()))
            found = {r["filing"]["id"]: r for r in recs if _matches(r, s.terms, rules)}
            out += [summary(found[v.id]["filing"], "live") for v in views if v.id in found]
        else:
            out += [_view_summary(v) for v in views]
        if out or cursor is None:
            break
    seqs = await rec.store.live_seqs([i["id"] for i in out])
    return [(i, seqs[i["id"]]) for i in out if i["id"] in seqs], cursor


def _matches(rec: Mapping[str, Any], terms: Mapping[str, str], rules: Any) -> bool:
    found = extract.extract(rec["filing"], rules)
    if codes := index.ack_codes(rec):
        found[index.ACK_CODE] = codes
    return all(extract.normalize(v) in found.get(k, ()) for k, v in terms.items())


def _view_summary(v: models.FilingView) -> dict[str, Any]:
    return {
        "id": v.id,
        "filing_type": str(v.filing_type),
        "environment": str(v.environment),
        "reference": v.reference,
        "filer_code": v.filer_code,
        "state": str(v.status),
        "received_at": v.received_at.isoformat(),
        "where": "live",
        "segment": None,
    }


__all__ = ["FIELDS", "LIVE_PAGES", "Archive", "Position", "Search", "search", "summary"]
