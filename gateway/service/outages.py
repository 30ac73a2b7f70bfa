"""Announced outages (issue 3): add one for an adapter or an environment, end one,
list those not over, and each calendar's next windows in UTC and local time. Pauses
(issue 21): pause an adapter, a filing type or both, resume, list; and the intake check
of windows that refuse a filing type (``refuse_in_window``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from gateway import config, errors, models, values
from gateway.rules import outages
from gateway.service.core import ServiceCore
from gateway.values import Actor

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

    async def add_pause(self, req: outages.PauseRequest, *, actor: Actor) -> outages.Pause:
        """Pause an adapter, a filing type, or a type on one adapter; audited."""
        if req.adapter is None and req.filing_type is None:
            raise errors.InvalidInput(
                "give an adapter, a filing_type, or both",
                details=[{"loc": "body", "msg": "one of adapter, filing_type"}],
            )
        if req.adapter is not None and req.adapter not in self.cfg.adapters:
            raise errors.InvalidInput(
                f"no adapter {req.adapter!r} is configured",
                details=[{"loc": "body.adapter", "msg": f"one of {sorted(self.cfg.adapters)}"}],
            )
        now = self.clock.now()
        if req.ends_at is not None and req.ends_at <= now:
            raise errors.InvalidInput(
                "ends_at must be in the future",
                details=[{"loc": "body.ends_at", "msg": "not after now"}],
            )
        pause = await self.store.add_pause(req, actor=actor, now=now)
        log.warning("control.paused", actor=actor.name, **_pause_log(pause))
        return pause

    async def resume_pause(self, pause_id: str, *, actor: Actor) -> outages.Pause:
        """End a pause now; what it held may go at once (at the adapter's rate limit)."""
        pause = await self.store.resume_pause(pause_id, actor=actor, now=self.clock.now())
        log.warning("control.resumed", actor=actor.name, **_pause_log(pause))
        self._on_new_work()
        return pause

    async def list_pauses(self, *, include_resumed: bool = False) -> dict[str, Any]:
        """Pauses in force (an expired one shows until the dispatcher resumes it)."""
        pauses = await self.store.list_pauses(include_resumed=include_resumed)
        return {"pauses": pauses}


def _pause_log(p: outages.Pause) -> dict[str, Any]:
    return {"pause_id": p.id, "target": p.target, "reason": p.reason, "ends_at": p.ends_at}


_RULES: dict[int, tuple[config.Config, outages.TypeRules]] = {}


def refuse_in_window(cfg: config.Config, new: values.NewFiling, now: datetime) -> None:
    """409 when a calendar window in force refuses this filing type on a routed adapter."""
    cached = _RULES.get(id(cfg))
    if cached is None or cached[0] is not cfg:
        cached = _RULES[id(cfg)] = (cfg, outages.TypeRules(cfg))
    ftype = new.filing.filing_type.value
    w = cached[1].refusal(ftype, new.adapters, now)
    if w is None:
        return
    ends = models.utc_iso(w.end)
    raise errors.Refused(
        "refused_in_window",
        f"filing type {ftype!r} is not accepted during the {w.calendar} maintenance window "
        f"(until {ends}); send it after the window ends",
        details={
            "filing_type": ftype,
            "calendar": w.calendar,
            "window_start": models.utc_iso(w.start),
            "window_end": ends,
        },
    )


def _types(found: dict[str, outages.TypeWindow]) -> dict[str, Any]:
    """``{"types": {type: action}}`` for a window that names types, else nothing."""
    return {"types": {t: w.action.value for t, w in sorted(found.items())}} if found else {}


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
    rules = outages.TypeRules(cfg)
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
                    **_types(rules.of_calendar(name, w.start)),
                }
                for w in outages.upcoming(cal, n, now)
            ],
        }
    return out
