"""``[adapters.NAME]`` (kind, concurrency, codec and X12 envelope, per-adapter retry,
breaker, calendars and pacing) and ``[[routes]]`` (which filings go to which adapters)."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from gateway import models
from gateway.config.policies import STRICT, BreakerSection, RetrySection
from gateway.durations import Duration

_X12_PARTY = r"^[0-9A-Z]{2}:[A-Za-z0-9 .-]{1,15}$"


class AdapterConfig(BaseModel):
    """`[adapters.NAME]`: gateway-side keys; every other key is the adapter's own option."""

    model_config = STRICT

    type: str | None = Field(default=None, description="a built-in or entry-point adapter kind")
    factory: str | None = Field(default=None, description="'package.module:Class' of an adapter")
    concurrency: int = Field(default=4, ge=1, le=1000)
    codec: Literal["auto", "json", "passthrough", "x12"] = Field(
        default="auto", description="how a filing becomes bytes on the wire"
    )
    x12_sender: str | None = Field(
        default=None, pattern=_X12_PARTY, description="ISA05:ISA06 for codec x12, e.g. 'ZZ:MAEU'"
    )
    x12_receiver: str | None = Field(
        default=None, pattern=_X12_PARTY, description="ISA07:ISA08 for codec x12, e.g. 'ZZ:CBPACE'"
    )
    x12_functional_id: str | None = Field(
        default=None, pattern=r"^[A-Z0-9]{2}$", description="GS01 for codec x12, e.g. 'SO'"
    )
    x12_version: str = Field(default="004010", pattern=r"^00[45]\d{3}[A-Z0-9]*$")
    retry: dict[str, Any] = Field(default_factory=dict, description="overrides of [retry]")
    calendars: list[str] = Field(
        default_factory=list, description="outage calendars that apply, e.g. ['ace-production']"
    )
    rate_limit: float | None = Field(
        default=None, gt=0, description="sends per second (token bucket); none = unlimited"
    )
    burst: int = Field(default=10, ge=1, description="token bucket size")
    probe_interval: Duration = Field(
        default=60.0, gt=0, description="one send per this inside a `probe` window"
    )
    breaker: dict[str, Any] = Field(default_factory=dict, description="overrides of [breaker]")
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _collect_options(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        known = set(cls.model_fields) - {"options"}
        out = {k: v for k, v in data.items() if k in known}
        out["options"] = {k: v for k, v in data.items() if k not in known}
        return out

    @field_validator("retry", "breaker")
    @classmethod
    def _overrides_valid(cls, value: dict[str, Any], info: Any) -> dict[str, Any]:
        """Checked now (check-config and start), not when the first delivery needs them."""
        section = RetrySection if info.field_name == "retry" else BreakerSection
        try:
            section.model_validate(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"{where}: {first['msg'].removeprefix('Value error, ')}") from exc
        return value

    @model_validator(mode="after")
    def _kind(self) -> AdapterConfig:
        if (self.type is None) == (self.factory is None):
            raise ValueError("give exactly one of 'type' (built-in) or 'factory' (module:Class)")
        if self.factory is not None and ":" not in self.factory:
            raise ValueError("factory must look like 'package.module:ClassName'")
        if self.codec == "x12" and None in (
            self.x12_sender,
            self.x12_receiver,
            self.x12_functional_id,
        ):
            raise ValueError("codec 'x12' needs x12_sender, x12_receiver and x12_functional_id")
        return self


class RouteConfig(BaseModel):
    """`[[routes]]`: filings that match go to every listed adapter (fan-out)."""

    model_config = STRICT

    filing_types: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    environments: list[models.Environment] = Field(
        default_factory=lambda: list(models.Environment), min_length=1
    )
    filer_codes: list[str] | None = None
    adapters: list[str] = Field(min_length=1)
    ack_within: Duration | None = Field(
        default=None, gt=0, description="an ack is expected this long after delivered"
    )
    order_until: Literal["delivered", "acknowledged"] = Field(
        default="delivered",
        description="the next delivery of an ordering key waits until the earlier one is this",
    )

    @field_validator("filing_types")
    @classmethod
    def _globs_match_something(cls, value: list[str]) -> list[str]:
        known = [t.value for t in models.FilingType]
        for pattern in value:
            if not fnmatch.filter(known, pattern):
                raise ValueError(f"{pattern!r} matches no filing type ({', '.join(known)})")
        return value
