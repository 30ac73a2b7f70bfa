"""Intake quotas (issue 22): per filer code and per token, a rate and a pending limit.

* **Rate**: a token bucket per filer code and per token, refilled at
  ``intake_per_second`` up to ``burst``. The buckets live in this process: N gateway
  processes behind a balancer accept up to N times the rate.
* **Pending**: the filer code's filings accepted and not yet settled, counted by the store
  for all filer codes in one statement (``open_filings``) at most every
  ``pending_refresh`` and, between two counts, plus what this process accepted since.
  Other processes' intake since the last count is not seen: the limit can be overshot by
  what they accept within one refresh. A filing let in and then refused for another
  reason (422 unroutable…) still counts until the next recount.

Over a limit the filing is refused with 429 ``quota_exceeded``, ``Retry-After`` (seconds)
and the limit named in ``details``; nothing is stored, nothing already accepted is
touched. A refused filing whose idempotency key an accepted filing already holds (a
replay) is let through, so a client retrying after a lost answer gets its 200, never a
429. With no limit configured, intake does not enter this module's checks at all.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from gateway import config, errors
from gateway.api import auth
from gateway.service import Inbound, Service

log = structlog.get_logger("gateway.quotas")


@dataclass(slots=True)
class Bucket:
    """A token bucket: ``take`` answers None (taken) or the seconds until one is free."""

    rate: float
    depth: int
    tokens: float = -1.0
    at: float = 0.0

    def wait_s(self, now: float) -> float:
        """Seconds until a token is free (0: one is free now); takes nothing."""
        if self.tokens < 0:  # a new bucket starts full
            self.tokens, self.at = float(self.depth), now
        self.tokens = min(float(self.depth), self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


@dataclass(slots=True)
class Pending:
    """Open filings by filer code as the store counted them at ``at``, plus this
    process's accepts since."""

    counts: dict[str, int] = field(default_factory=dict)
    at: float | None = None
    #: the recount under way, if any (intake goes on with the counts it has meanwhile)
    task: asyncio.Task[None] | None = None
    #: this process's accepts since the running recount started (kept on top of it: one
    #: committed before the count read it is counted twice until the next recount, which
    #: errs on the safe side of the limit)
    during: dict[str, int] = field(default_factory=dict)


class Quotas:
    """The intake quotas of one process (``Quotas.admit`` before a filing is submitted)."""

    def __init__(
        self,
        section: config.QuotasSection,
        *,
        service: Service,
        monotonic: Callable[[], float] = time.monotonic,
        on_refused: Callable[[str, str], None] | None = None,
    ) -> None:
        self.section = section
        self.active = section.active
        self.service = service
        self.monotonic = monotonic
        #: called with (limit, filer code) on each refusal (the metrics)
        self.on_refused = on_refused
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._pending = Pending()

    def _bucket(self, kind: str, key: str, limit: config.RateLimit) -> Bucket | None:
        if limit.intake_per_second is None:
            return None
        found = self._buckets.get((kind, key))
        if found is None:
            found = self._buckets[(kind, key)] = Bucket(limit.intake_per_second, limit.depth)
        return found

    async def admit(self, principal: auth.Principal, item: Inbound) -> None:
        """Take this filing's place in its quotas, or raise ``QuotaExceeded`` (unless the
        filing is a replay of one already accepted: that goes through)."""
        filer = item.event.filer_code
        now = self.monotonic()
        quota = self.section.for_filer(filer)
        buckets: list[tuple[str, Bucket, dict[str, Any]]] = []
        if (b := self._bucket("filer", filer, quota)) is not None:
            buckets.append(("filer", b, {"filer_code": filer}))
        token_limit = self.section.tokens.get(principal.name)
        if token_limit is not None and (b := self._bucket("token", principal.name, token_limit)):
            buckets.append(("token", b, {"token": principal.name}))
        refusal: errors.QuotaExceeded | None = None
        for scope, bucket, who in buckets:
            wait = bucket.wait_s(now)
            if wait > 0:
                refusal = _refusal(
                    "intake_per_second", scope, who, bucket.rate, wait, burst=bucket.depth
                )
                break
        if refusal is None and quota.max_pending is not None:
            open_now = await self._open(filer, now)
            if open_now >= quota.max_pending:
                wait = self.section.pending_retry_after
                who = {"filer_code": filer, "pending": open_now}
                refusal = _refusal("max_pending", "filer", who, quota.max_pending, wait)
        if refusal is not None:
            if await self._is_replay(item):
                return
            if self.on_refused is not None:
                self.on_refused(str(refusal.details["limit"]), filer)
            raise refusal
        for _, bucket, _ in buckets:
            bucket.take()
        if quota.max_pending is not None:
            pending = self._pending
            pending.counts[filer] = pending.counts.get(filer, 0) + 1
            if pending.task is not None:
                pending.during[filer] = pending.during.get(filer, 0) + 1

    async def _open(self, filer: str, now: float) -> int:
        """The filer's open filings. Only the very first count is waited for; later
        recounts run beside intake, which uses the counts it has until they land."""
        pending = self._pending
        stale = pending.at is None or now - pending.at >= self.section.pending_refresh
        if stale and pending.task is None:
            pending.during = {}
            pending.task = asyncio.create_task(self._recount())
        if pending.at is None and pending.task is not None:
            await asyncio.shield(pending.task)
        return pending.counts.get(filer, 0)

    async def recounted(self) -> None:
        """Wait for the recount under way, if any (tests, shutdown)."""
        task = self._pending.task
        if task is not None:
            await asyncio.shield(task)

    async def _recount(self) -> None:
        pending = self._pending
        try:
            started = self.monotonic()  # not ``now``: the task may start a little later
            counts = await self.service.store.open_filings()
            for code, n in pending.during.items():
                counts[code] = counts.get(code, 0) + n
            pending.counts, pending.at = counts, started
        except errors.GatewayError as exc:  # the store away: keep the counts we have
            log.warning("quotas.recount_failed", error=str(exc))
            if pending.at is None:
                raise
        finally:
            pending.task = None

    async def _is_replay(self, item: Inbound) -> bool:
        key = self.service.prepare(item).filing.idempotency_key
        return key is not None and await self.service.store.filing_by_key(key) is not None


QUOTAS = web.AppKey("quotas", Quotas)


def _refusal(
    limit: str,
    scope: str,
    who: dict[str, Any],
    value: float,
    wait_s: float,
    *,
    burst: int | None = None,
) -> errors.QuotaExceeded:
    retry_after = max(1, math.ceil(wait_s))
    whose = f"filer code {who['filer_code']!r}" if scope == "filer" else f"token {who['token']!r}"
    what = f"{value:g}/s (burst {burst})" if limit == "intake_per_second" else f"{value:g}"
    return errors.QuotaExceeded(
        f"{whose} is over its {limit} quota of {what}; retry after {retry_after} s",
        details={
            "limit": limit,
            "scope": scope,
            "value": value,
            "retry_after_s": retry_after,
            **({"burst": burst} if burst is not None else {}),
            **who,
        },
        retry_after=retry_after,
    )
