"""Status callbacks: durable, signed (Standard Webhooks), retried, dead-lettered, guarded.

The store queues one event per status change of a filing that has a ``callback_url``
(delivered, acknowledged, rejected, dead, cancelled), in the transaction that changed it.
``CallbackSender`` runs beside the dispatcher, never in its way: it claims due events
(one at a time per filing, so they arrive in order), signs each with the subscriber's
secret (``webhook-id`` is the event id, stable across retries, so receivers deduplicate),
POSTs it without following redirects through a resolver that connects only to addresses
the SSRF guard checked, and decides the outcome in ONE place (``_decide``): 2xx →
delivered; a redirect or a refused host → dead; anything else → retry with backoff, or
dead when the ``[callbacks.retry]`` policy gives up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import anyio
import structlog
from standardwebhooks.webhooks import Webhook

from gateway import config, errors
from gateway.clock import Clock
from gateway.delivery import ssrf, tracing
from gateway.rules import retry
from gateway.store.base import Store
from gateway.values import CallbackClaim

if TYPE_CHECKING:
    from gateway.delivery import spans

log = structlog.get_logger("gateway.delivery.callbacks")

USER_AGENT = "edi-gateway-callbacks/1"


class CallbackFailed(errors.TransientError):
    """The callback receiver did not take the event."""


class CallbackDead(errors.PermanentError):
    """The callback cannot be delivered by retrying."""


def load_secrets(
    section: config.CallbacksSection, environ: Mapping[str, str]
) -> list[tuple[ssrf.Entry, Webhook]]:
    """(host entry, signer) pairs from ``[callbacks.subscribers.*]``; ConfigError if missing."""
    out: list[tuple[ssrf.Entry, Webhook]] = []
    for name, sub in section.subscribers.items():
        key = f"callbacks.subscribers.{name}"
        if sub.secret_env is not None:
            secret = environ.get(sub.secret_env)
            if not secret:
                raise errors.ConfigError(f"{key}: env var {sub.secret_env} is not set", key=key)
        else:
            assert sub.secret_file is not None
            try:
                secret = Path(sub.secret_file).read_text().strip()
            except OSError as exc:
                raise errors.ConfigError(f"{key}: cannot read secret_file: {exc}", key=key) from exc
        try:
            signer = Webhook(secret)
        except Exception as exc:  # the library raises plain exceptions for a bad secret
            raise errors.ConfigError(f"{key}: not a Standard Webhooks secret", key=key) from exc
        out.extend((ssrf.parse_entry(h), signer) for h in sub.hosts)
    return out


class CallbackSender:
    """Claims queued status events and POSTs them, signed, to their callback URLs."""

    def __init__(
        self,
        *,
        store: Store,
        cfg: config.Config,
        clock: Clock,
        owner: str,
        environ: Mapping[str, str] | None = None,
        policy: ssrf.HostPolicy | None = None,
    ) -> None:
        self.store = store
        self.cfg = cfg
        self.section = cfg.callbacks
        self.clock = clock
        self.owner = owner
        self.policy = policy or ssrf.HostPolicy(self.section.allowed_hosts)
        self.secrets = load_secrets(self.section, os.environ if environ is None else environ)
        self.retry = retry.RetryPolicy(self.section.retry)
        self._wake = anyio.Event()
        self._busy = 0
        self.sent = 0
        #: OpenTelemetry (``tracing.build``); None: no span work at all
        self.tracer: spans.Tracer | None = None

    def reconfigure(self, cfg: config.Config, secrets: list[tuple[ssrf.Entry, Webhook]]) -> None:
        """Take a reloaded ``[callbacks]`` (subscribers, allowed hosts, retry); a callback
        being sent finishes under the settings it started with."""
        self.cfg = cfg
        self.section = cfg.callbacks
        # in place: the running session's resolver holds this object
        self.policy.entries = ssrf.HostPolicy(self.section.allowed_hosts).entries
        self.secrets = secrets
        self.retry = retry.RetryPolicy(self.section.retry)
        self.wake()

    # --- intake check -----------------------------------------------------------------

    def signer_for(self, url: str) -> Webhook | None:
        host, port = self.policy.split(url)
        host = host.lower()
        for entry, signer in self.secrets:
            if entry.host == host and entry.port in (None, port):
                return signer
        return None

    async def check_url(self, url: str) -> None:
        """Refuse (422) a callback URL the guard refuses or no secret is configured for."""
        await self.policy.check_url(url)
        if self.signer_for(url) is None:
            host, port = self.policy.split(url)
            raise ssrf.CallbackRefused(
                f"no [callbacks.subscribers] secret covers {host}:{port}",
                details={"host": host, "port": port},
            )

    # --- loop -------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Send due events until cancelled; leases still held are released on the way out."""
        connector = aiohttp.TCPConnector(
            resolver=ssrf.GuardedResolver(self.policy), use_dns_cache=False
        )
        timeout = aiohttp.ClientTimeout(total=self.section.timeout)
        try:
            async with (
                aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
                anyio.create_task_group() as tg,
            ):
                while True:
                    self._wake = anyio.Event()
                    claimed = await self._claim(tg, session)
                    if claimed and self._busy < self.section.concurrency:
                        continue
                    with anyio.move_on_after(await self._wait_s()):
                        await self._wake.wait()
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await self.store.release_callbacks(owner=self.owner, now=self.clock.now())
                except errors.StoreError as exc:
                    log.warning("callback.release_failed", error=str(exc))

    async def _wait_s(self) -> float:
        scan = self.cfg.gateway.scan_interval
        try:
            due = await self.store.next_callback_due()
        except errors.StoreError:
            return scan
        if due is None:
            return scan
        wait = (due - self.clock.now()).total_seconds()
        return scan if wait <= 0 else min(scan, max(wait, 0.005))

    async def _claim(self, tg: anyio.abc.TaskGroup, session: aiohttp.ClientSession) -> int:
        free = self.section.concurrency - self._busy
        if free <= 0:
            return 0
        try:
            claims = await self.store.claim_callbacks(
                owner=self.owner,
                now=self.clock.now(),
                lease_s=self.section.timeout + self.cfg.gateway.lease,
                limit=free,
            )
        except errors.StoreError as exc:
            log.error("callback.claim_failed", error=str(exc))
            return 0
        for claim in claims:
            self._busy += 1
            tg.start_soon(self._run_one, session, claim)
        return len(claims)

    async def _run_one(self, session: aiohttp.ClientSession, claim: CallbackClaim) -> None:
        try:
            outcome: BaseException | int
            try:
                outcome = await self._post(session, claim)
            except Exception as exc:  # every failure becomes an outcome in _decide
                outcome = exc
            with anyio.CancelScope(shield=True):
                await self._decide(claim, outcome)
        finally:
            self._busy -= 1
            self._wake.set()

    async def _post(self, session: aiohttp.ClientSession, claim: CallbackClaim) -> int:
        signer = self.signer_for(claim.url)
        if signer is None:
            raise CallbackDead("no subscriber secret covers this callback URL any more")
        host, port = self.policy.split(claim.url)
        try:
            self.policy.check_host(host, port)
            if ssrf._literal(host) is not None:  # aiohttp skips the resolver for literals
                self.policy.check_addresses(host, port, [host.strip("[]")])
        except ssrf.CallbackRefused as exc:
            raise CallbackDead(str(exc)) from exc
        sent_at = self.clock.now()
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": claim.id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signer.sign(claim.id, sent_at, claim.body),
        }
        if self.tracer is None:
            return await _send(session, claim, headers)
        view = await self.store.get_filing(claim.filing_id)
        carrier = tracing.carrier_of(view.metadata) if view is not None else None
        with self.tracer.callback(carrier, claim.url, headers) as span:
            try:
                status = await _send(session, claim, headers)
            except CallbackFailed as exc:
                span.set_attribute("error.type", type(exc.__cause__).__name__)
                raise
            span.set_attribute("http.response.status_code", status)
            if status >= 400:
                span.set_attribute("error.type", str(status))
            return status

    async def _decide(self, claim: CallbackClaim, outcome: BaseException | int) -> None:
        """The ONE place a callback attempt's outcome is decided."""
        now = self.clock.now()
        bound = log.bind(
            callback_id=claim.id, filing_id=claim.filing_id, attempt=claim.attempts + 1
        )
        error: str | None = None
        if isinstance(outcome, int):
            if 200 <= outcome < 300:
                ok = await self._finish(claim, "delivered", now)
                self.sent += ok
                bound.info("callback.delivered", status=outcome)
                return
            error = f"HTTP {outcome}"
            if 300 <= outcome < 400:
                bound.error("callback.dead", error=f"{error}: redirects are not followed")
                await self._finish(claim, "dead", now, error=f"{error}: redirects are not followed")
                return
        elif isinstance(outcome, errors.PermanentError):
            bound.error("callback.dead", error=str(outcome))
            await self._finish(claim, "dead", now, error=str(outcome))
            return
        else:
            error = str(outcome) if isinstance(outcome, errors.EdiGatewayError) else repr(outcome)
        attempts = claim.attempts + 1
        decision = self.retry.decide(attempts=attempts, now=now, first_seen=claim.created_at)
        if decision is None:
            why = self.retry.give_up_reason(attempts=attempts, now=now, first_seen=claim.created_at)
            bound.error("callback.dead", error=f"{error}; {why}")
            await self._finish(claim, "dead", now, error=f"{error}; {why}")
            return
        bound.warning("callback.retry_scheduled", error=error, delay_s=round(decision.delay_s, 3))
        await self._finish(claim, "waiting_retry", now, at=decision.at, error=error)

    async def _finish(
        self,
        claim: CallbackClaim,
        state: str,
        now: datetime,
        *,
        at: datetime | None = None,
        error: str | None = None,
    ) -> bool:
        try:
            ok = await self.store.finish_callback(claim, now=now, state=state, at=at, error=error)
        except errors.StoreError as exc:
            log.error("callback.outcome_not_recorded", callback_id=claim.id, error=str(exc))
            return False
        if not ok:
            log.warning("callback.lease_lost", callback_id=claim.id)
        return ok


async def _send(
    session: aiohttp.ClientSession, claim: CallbackClaim, headers: dict[str, str]
) -> int:
    try:
        async with session.post(
            claim.url, data=claim.body.encode(), headers=headers, allow_redirects=False
        ) as response:
            await response.read()
            return response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise CallbackFailed(f"{type(exc).__name__}: {exc}") from exc
