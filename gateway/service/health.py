"""Health: each adapter's configuration, ``check()``, delivery counts and outage state,
and ``/readyz`` (store, migrations, dispatcher, shutdown; degraded adapters named)."""

from __future__ import annotations

import builtins
from typing import Any

from gateway import errors
from gateway.service.core import ServiceCore
from gateway.store import schema


class Health(ServiceCore):
    """How the gateway and its adapters are."""

    async def adapter_info(self) -> builtins.list[dict[str, Any]]:
        counts = await self.store.counts()
        status = self.outage_status()
        out = []
        for name, section in self.cfg.adapters.items():
            adapter = self.adapters.get(name)
            health: dict[str, Any] | None = None
            if adapter is not None:
                try:
                    h = await adapter.check()
                    health = {"ok": h.ok, "detail": h.detail}
                except Exception as exc:  # a broken check() is reported, not raised
                    health = {"ok": False, "detail": f"check failed: {exc!r}"}
            out.append(
                {
                    "name": name,
                    "type": section.type or section.factory,
                    "concurrency": section.concurrency,
                    "codec": section.codec,
                    "health": health,
                    "deliveries": counts.get(name, {}),
                    **status.get(name, {}),
                }
            )
        return out

    async def readiness(self) -> dict[str, Any]:
        """Ready to take traffic? 503 names the failing check; an adapter in an outage
        only makes the gateway ``degraded`` (it still accepts and queues filings)."""
        checks: dict[str, str] = {}
        try:
            await self.store.ping()
            checks["store"] = "ok"
            version = await self.store.schema_version()
            checks["migrations"] = (
                "ok"
                if version >= schema.SCHEMA_VERSION
                else f"behind: database at v{version}, this gateway needs v{schema.SCHEMA_VERSION}"
            )
        except errors.StoreError as exc:
            checks["store"] = f"failing: {exc}"
            checks["migrations"] = "unknown: store unreachable"
        checks["dispatcher"] = "ok" if self.dispatcher_running() else "not running"
        checks["shutdown"] = "shutting down" if self.shutting_down else "ok"
        degraded = {}
        adapters = self.outage_status()
        for name, st in adapters.items():
            gate, brk = st.get("gate") or {}, st.get("breaker") or {}
            if gate.get("state") == "closed":
                degraded[name] = f"outage until {gate.get('until')}: {gate.get('reason')}"
            elif brk.get("state") in ("open", "half_open"):
                degraded[name] = f"circuit breaker {brk.get('state')}"
        ready = all(v == "ok" for v in checks.values())
        status = "not_ready" if not ready else "degraded" if degraded else "ready"
        failing = sorted(k for k, v in checks.items() if v != "ok")
        body: dict[str, Any] = {
            "status": status,
            "checks": checks,
            "failing": failing,
            "degraded": degraded,
        }
        sources = self.source_status()
        if sources:
            body["sources"] = sources
        held = {n: st["held_types"] for n, st in adapters.items() if st.get("held_types")}
        if held:  # paused on purpose (issue 21): shown, not a degradation
            body["held"] = held
        return body
