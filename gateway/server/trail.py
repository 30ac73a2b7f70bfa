"""What ``serve`` writes to the audit trail: the ``gateway.started``, ``config.loaded``
(with the config's hash) and ``gateway.stopped`` rows, and the signed checkpoints of the
trail's head, written at start, every ``[audit] checkpoint_every_rows`` rows or
``checkpoint_every`` (when rows were added), and on clean shutdown."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import anyio
import structlog

from gateway import config, errors, values
from gateway.audit import chain as audit
from gateway.audit import checkpoints
from gateway.clock import Clock
from gateway.store.base import Store

log = structlog.get_logger("gateway.server")


async def record_start(
    store: Store,
    cfg: config.Config,
    clock: Clock,
    *,
    owner: str,
    adapters: Iterable[str],
    version: int,
) -> None:
    """The two rows a start writes: who started with which adapters, and which config."""
    await store.append_audit(
        "gateway.started",
        actor=values.SYSTEM,
        now=clock.now(),
        details={"owner": owner, "listen": cfg.gateway.listen, "adapters": sorted(adapters)},
    )
    await store.append_audit(
        "config.loaded",
        actor=values.SYSTEM,
        now=clock.now(),
        details={
            "config_sha256": config_hash(cfg),
            "adapters": sorted(cfg.adapters),
            "routes": len(cfg.routes),
            "schema_version": version,
        },
    )


async def record_stop(store: Store, clock: Clock, *, owner: str) -> None:
    """``gateway.stopped``; a store that is gone by now is logged, not raised."""
    try:
        await store.append_audit(
            "gateway.stopped", actor=values.SYSTEM, now=clock.now(), details={"owner": owner}
        )
    except errors.StoreError as exc:
        log.warning("gateway.stop_audit_failed", error=str(exc))


class Checkpointing:
    """Signed checkpoints of this gateway's audit chain, in ``[audit] checkpoint_dir``."""

    def __init__(self, cfg: config.Config, store: Store, clock: Clock) -> None:
        self.cfg = cfg
        self.store = store
        self.clock = clock
        self.checkpoints: checkpoints.ChainCheckpoints | None = None
        self._last_checkpoint: tuple[int, float] = (0, 0.0)

    async def open(self) -> None:
        try:
            key, source = await anyio.to_thread.run_sync(
                lambda: checkpoints.load_key(self.cfg, create=True)
            )
        except OSError as exc:
            raise errors.ConfigError(
                f"audit.checkpoint_dir: cannot create the audit key file: {exc}",
                key="audit.checkpoint_dir",
            ) from exc
        assert key is not None
        directory = checkpoints.directory(self.cfg)
        if source == "generated":
            log.warning(
                "audit.key_generated",
                path=str(directory / checkpoints.KEY_FILE),
                note="set EDIGW_AUDIT__HMAC_KEY and keep the key away from the database host",
            )
        self.checkpoints = checkpoints.ChainCheckpoints(
            checkpoints.CheckpointDir(directory, key=key),
            store=self.store,
            store_url=self.cfg.gateway.store,
        )
        newest = await self.checkpoints.newest()  # this chain's own: others are not evidence
        head = await self.store.audit_head()
        if newest is not None and (head is None or head[0] < newest.seq):
            log.error(
                "audit.tail_missing",
                checkpoint_seq=newest.seq,
                head_seq=head[0] if head else 0,
                note="the audit trail has fewer rows than its last checkpoint; run audit verify",
            )
        await self.write()

    async def write(self) -> checkpoints.Checkpoint | None:
        """Sign the trail's current head into the checkpoint directory (if it moved)."""
        if self.checkpoints is None:
            return None
        try:
            head = await self.store.audit_head()
        except errors.StoreError as exc:
            log.warning("audit.checkpoint_failed", error=str(exc))
            return None
        if head is None or head[0] == self._last_checkpoint[0]:
            return None
        try:
            cp = await self.checkpoints.write(seq=head[0], head=head[1], at=_iso(self.clock))
        except OSError as exc:
            log.error("audit.checkpoint_failed", error=str(exc))
            return None
        except errors.StoreError as exc:  # reading row 1 to learn the chain's id
            log.warning("audit.checkpoint_failed", error=str(exc))
            return None
        if cp is None:
            return None
        self._last_checkpoint = (cp.seq, anyio.current_time())
        log.debug("audit.checkpoint_written", seq=cp.seq)
        return cp

    async def run(self, scope: anyio.CancelScope) -> None:
        with scope:
            await self._forever()

    async def _forever(self) -> None:
        every_s = self.cfg.audit.checkpoint_every
        every_rows = self.cfg.audit.checkpoint_every_rows
        while True:
            await anyio.sleep(min(every_s, 1.0))
            try:
                head = await self.store.audit_head()
            except errors.StoreError:
                continue
            seq, at = self._last_checkpoint
            if head is None or head[0] == seq:
                continue
            if head[0] - seq >= every_rows or anyio.current_time() - at >= every_s:
                await self.write()


def config_hash(cfg: config.Config) -> str:
    """SHA-256 of the effective config (canonical JSON; secrets appear masked)."""
    return hashlib.sha256(audit.canonical(cfg.model_dump(mode="json")).encode()).hexdigest()


def _iso(clock: Clock) -> str:
    return clock.now().isoformat().replace("+00:00", "Z")
