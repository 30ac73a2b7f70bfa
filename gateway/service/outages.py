"""Announced outages (issue 3): add one for an adapter or an environment, end one,
list those not over, and each calendar's next windows in UTC and local time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from gateway import config, errors, models
from gateway.rules import outages
from gateway.service.core import ServiceCore
from gateway.store.base import Actor

log = structlog.get_logger("gateway.service")


class Outages(ServiceCore):
    """Outages announced, ended and listed."""

    async def add_outage(self, req: outages.OutageRequest, *, actor: Actor) -> outages.Outage:
        """Announce an outage of one adapter or one environment; audited."""
        if (req.adapter is None) == (req.environment is None):
            raise errors.InvalidInput(
                "give exactly one of adapter or environment",
                details=[{"loc": "body", "msg": "one of adapter, environment"}],
            )
        if req.adapter is not None and req.adapter not in self.cfg.adapters:
            raise errors.InvalidInput(
                f"no adapter {req.adapter!r} is configured",
                details=[{"loc": "body.adapter", "msg": f"one of {sorted(self.cfg.adapters)}"}],
            )
        now = self.clock.now()
        if req.ends_at is not None and req.ends_at <= (req.starts_at or now):
            raise errors.InvalidInput(
                "ends_at must be after starts_at (and after now when starts_at is absent)",
                details=[{"loc": "body.ends_at", "msg": "not after the start"}],
            )
        outage = await self.store.add_outage(req, actor=actor, now=now)
        log.warning("outage.added", actor=actor.name, **_outage_log(outage))
        self._on_new_work()
        return outage

    async def remove_outage(self, outage_id: str, *, actor: Actor) -> outages.Outage:
        """End an announced outage now; what it deferred may go at once."""
        outage = await self.store.remove_outage(outage_id, actor=actor, now=self.clock.now())
        log.warning("outage.removed", actor=actor.name, **_outage_log(outage))
        self._on_new_work()
        return outage

    async def list_outages(self, *, upcoming: int | None = None) -> dict[str, Any]:
        """Announced outages not yet over; with ``upcoming``, each calendar's next windows."""
        now = self.clock.now()
        data: dict[str, Any] = {"outages": await self.store.list_outages(now=now)}
        if upcoming is not None:
            data["calendars"] = calendar_windows(self.cfg, upcoming, now)
        return data


def _outage_log(o: outages.Outage) -> dict[str, Any]:
    return {
        "outage_id": o.id,
        "adapter": o.adapter,
        "environment": o.environment,
        "starts_at": models.utc_iso(o.starts_at),
        "ends_at": models.utc_iso(o.ends_at),
        "reason": o.reason,
        "reference": o.reference,
    }


def calendar_windows(cfg: config.Config, n: int, now: datetime) -> dict[str, Any]:
    """The next ``n`` windows of every configured calendar, in UTC and local time."""
    out: dict[str, Any] = {}
    for name, cal in outages.calendars_from_config(cfg).items():
        used_by = sorted(a for a, s in cfg.adapters.items() if name in s.calendars)
        out[name] = {
            "timezone": cal.zone.key,
            "adapters": used_by,
            "windows": [
                {
                    "start": models.utc_iso(w.start),
                    "end": models.utc_iso(w.end),
                    "start_local": w.start.astimezone(cal.zone).isoformat(),
                    "end_local": w.end.astimezone(cal.zone).isoformat(),
                    "policy": w.policy.value,
                }
                for w in outages.upcoming(cal, n, now)
            ],
        }
    return out
