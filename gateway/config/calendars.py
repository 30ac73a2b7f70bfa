"""``[calendars.NAME]``: weekly maintenance windows in one time zone, and the ACE
calendars that ship with the gateway."""

from __future__ import annotations

import zoneinfo
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from gateway import models
from gateway.config.policies import STRICT

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
#: what a window does to one filing type (issue 21)
TypeAction = Literal["hold", "probe", "refuse_intake"]


class WindowConfig(BaseModel):
    """`[[calendars.NAME.windows]]`: a weekly window; `end` <= `start` means the next day."""

    model_config = STRICT

    days: list[Day] = Field(min_length=1, description="days the window STARTS on: mon … sun")
    start: str = Field(pattern=_HHMM, description="local start time, HH:MM")
    end: str = Field(pattern=_HHMM, description="local end time, HH:MM; <= start: next day")
    policy: Literal["hold", "probe"] = Field(
        default="hold", description="hold: send nothing; probe: try at the low probe rate"
    )
    types: dict[models.FilingType, TypeAction] = Field(
        default_factory=dict,
        description="per filing type inside the window: hold (wait, no attempt), probe "
        "(the window's probe), refuse_intake (POST answers 409 and queued ones wait)",
    )

    @field_validator("days", mode="before")
    @classmethod
    def _lower_days(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [v.strip().lower()[:3] if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> WindowConfig:
        if self.start == self.end:
            raise ValueError("start and end are equal; a window lasts less than 24 hours")
        looser = sorted(t.value for t, a in self.types.items() if a == "probe")
        if self.policy == "hold" and looser:
            raise ValueError(
                f"types {looser} are 'probe' inside a 'hold' window, which holds every type: "
                'write policy = "probe" and name the types to hold'
            )
        return self


class CalendarConfig(BaseModel):
    """`[calendars.NAME]`: recurring maintenance windows in one time zone."""

    model_config = STRICT

    timezone: str = Field(default="America/New_York", description="IANA zone, e.g. UTC")
    description: str = ""
    windows: list[WindowConfig] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


#: CBP's published ACE windows ("How to Use the Automated Commercial Environment (ACE)");
#: always present, a user's file may override them by name
DEFAULT_CALENDARS: dict[str, dict[str, Any]] = {
    "ace-production": {
        "timezone": "America/New_York",
        "description": "ACE production: Tue/Thu 05:00-07:00 (short), Sat 22:00-Sun 04:00",
        "windows": [
            {"days": ["tue", "thu"], "start": "05:00", "end": "07:00", "policy": "probe"},
            {"days": ["sat"], "start": "22:00", "end": "04:00", "policy": "hold"},
        ],
    },
    "ace-cert": {
        "timezone": "America/New_York",
        "description": "ACE CERT: as needed in non-business hours, 17:30-08:30",
        "windows": [{"days": list(DAYS), "start": "17:30", "end": "08:30", "policy": "probe"}],
    },
}
