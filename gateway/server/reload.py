"""Reload without restart: ``SIGHUP`` and ``POST /v1/admin/reload`` (admin scope).

The new config is read (``reload_from``: the ``serve --config`` file with its ``EDIGW_``
environment) and checked whole before anything changes: a key that fails validation, a
key that cannot change while running (``[gateway]``: listen address, store, workers…;
and every section other than the reloadable ones), an adapter that cannot be built or a
token whose secret is missing refuses the reload, naming the key, and the running
gateway goes on as it was.

What reloads: ``routes``, ``adapters`` (added, removed, or with changed settings: these
are claimed no more while their in-flight sends finish and are recorded, then the new
adapter takes over; the untouched ones never pause), ``calendars``, ``auth`` (tokens)
and ``callbacks`` (subscribers, allowed hosts). Deliveries of a removed adapter stay in
the store, waiting; they go on if it comes back. Nothing is lost or sent twice: a
delivery is in one adapter's hands at a time, under its lease, before and after.

Every reload is audited (``config.reloaded``) with the changed keys, secrets redacted
by the audit trail's ``Redactor``; a refused one is logged (``config.reload_refused``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from gateway import config, errors, registry, values
from gateway.api import auth
from gateway.audit import redact
from gateway.delivery import callbacks
from gateway.rules import acks as ackrules
from gateway.server import trail

if TYPE_CHECKING:
    from gateway.server.parts import Parts

log = structlog.get_logger("gateway.server")

#: the top-level sections a reload may change; a change anywhere else is refused
RELOADABLE = frozenset({"adapters", "routes", "calendars", "auth", "callbacks"})
#: why a fixed section cannot change while running, for the refusal's message
FIXED_WHY = {
    "gateway": "the listen address, store and process settings are fixed while running",
}
#: leaf keys whose values are shown masked in the audited diff (beyond the Redactor's)
_HIDDEN_LEAVES = frozenset({"sha256"})


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists are leaves."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out |= flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return out
    return {prefix: value}


def diff(old: config.Config, new: config.Config, redactor: redact.Redactor) -> list[dict[str, Any]]:
    """The changed keys (dotted paths), each with its old and new value, secrets masked."""
    before = flatten(old.model_dump(mode="json"))
    after = flatten(new.model_dump(mode="json"))
    out = []
    for key in sorted(before.keys() | after.keys()):
        if before.get(key, _ABSENT) == after.get(key, _ABSENT):
            continue
        leaf = key.rpartition(".")[2]
        entry: dict[str, Any] = {"key": key}
        for side, found in (("from", before), ("to", after)):
            if key in found:
                shown = redactor.value({leaf: found[key]})[leaf]
                entry[side] = redact.MASK if leaf in _HIDDEN_LEAVES else shown
        out.append(entry)
    return out


_ABSENT = object()
#: a cross-key check names its key first: "config: routes[0] names adapter 'x', …"
_NAMED_KEY = re.compile(r"^(?:config: )?([a-z_]+(?:\[\d+\]|\.[\w-]+)*) ")


def check_fixed(old: config.Config, new: config.Config) -> None:
    """Refuse, naming the first key, a change outside the reloadable sections."""
    for change in diff(old, new, redact.Redactor()):
        section = change["key"].split(".", 1)[0]
        if section not in RELOADABLE:
            why = FIXED_WHY.get(section, f"[{section}] is read at start-up only")
            raise errors.ConfigError(
                f"{change['key']} cannot be reloaded ({why}); restart the gateway to change it",
                key=change["key"],
            )


def changed_adapters(old: config.Config, new: config.Config) -> set[str]:
    """Adapters added, removed, or with any setting changed."""
    names = set(old.adapters) | set(new.adapters)
    return {n for n in names if old.adapters.get(n) != new.adapters.get(n)}


class Reloader:
    """Checks a new config whole, then hands each part its share; one reload at a time."""

    def __init__(
        self,
        parts: Parts,
        *,
        source: Callable[[], config.Config] | None,
        environ: Mapping[str, str] | None,
        restart_acks: Callable[[], None],
    ) -> None:
        self.parts = parts
        self.source = source
        self.environ = environ
        self.restart_acks = restart_acks
        self._lock = anyio.Lock()
        self.reloads = 0

    async def reload(self, *, actor: values.Actor = values.SYSTEM) -> dict[str, Any]:
        """Read, check and apply the config; ``errors.ConfigError`` (with ``key``) if refused."""
        async with self._lock:
            try:
                return await self._reload(actor)
            except errors.ConfigError as exc:
                log.error("config.reload_refused", key=exc.key, error=str(exc), actor=actor.name)
                raise

    async def _reload(self, actor: values.Actor) -> dict[str, Any]:
        p = self.parts
        if self.source is None:
            raise errors.Refused(
                "reload_unavailable", "this gateway was not started from a config file"
            )
        try:
            new = self.source()  # ConfigError naming the key
        except errors.ConfigError as exc:
            if exc.key is None and (named := _NAMED_KEY.match(str(exc))):
                raise errors.ConfigError(str(exc), key=named.group(1)) from exc
            raise
        old = p.cfg
        check_fixed(old, new)
        if new.auth.mode == "none" and not new.gateway.listens_on_loopback():
            raise errors.ConfigError(
                "auth.mode: 'none' is only allowed when listening on a loopback address",
                key="auth.mode",
            )
        changes = diff(old, new, p.redactor)
        touched = changed_adapters(old, new)
        # everything that can fail is built before anything changes
        built = {
            name: registry.build(name, new.adapters[name]) for name in touched & set(new.adapters)
        }
        authenticator = auth.Authenticator(new.auth, self.environ)
        secrets = callbacks.load_secrets(
            new.callbacks, os.environ if self.environ is None else self.environ
        )
        for name, adapter in built.items():
            try:
                await adapter.open()
            except errors.DeliveryError as exc:  # as at start-up: it may come up later
                log.warning("adapter.open_failed", adapter=name, error=str(exc))
        adapters = {n: p.adapters[n] for n in new.adapters if n not in touched} | built
        adapters = {n: adapters[n] for n in new.adapters}
        # apply: the dispatcher first (it waits for the changed adapters' sends)
        old_objects = await p.dispatcher.reconfigure(new, adapters, touched)
        p.adapters = adapters
        p.cfg = new
        vars(p.authenticator).update(vars(authenticator))
        p.callbacks.reconfigure(new, secrets)
        p.service.cfg = new
        p.service.adapters = dict(adapters)
        p.service.acks.rules = ackrules.Rules(new)
        p.monitor.cfg = new
        p.monitor.adapters = dict(adapters)
        p.ack_runner.adapters = dict(adapters)
        p.ack_runner.ack_paused = p.dispatcher.guard.in_outage
        if touched:
            self.restart_acks()
        for name, adapter in old_objects.items():
            try:
                await adapter.close()
            except Exception as exc:  # one adapter failing to close must not stop the rest
                log.warning("adapter.close_failed", adapter=name, error=repr(exc))
        self.reloads += 1
        details = {
            "config_sha256": trail.config_hash(new),
            "changes": changes,
            "adapters_changed": sorted(touched),
        }
        await p.store.append_audit(
            "config.reloaded", actor=actor, now=p.clock.now(), details=details
        )
        log.info("config.reloaded", actor=actor.name, changed=[c["key"] for c in changes])
        return details
