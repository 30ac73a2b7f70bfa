"""``[quotas]`` (intake rate and pending-intake limits per filer code and per token),
``[fairness]`` (the filers' weights in fair delivery) and ``[metrics]`` (which filer
codes get their own metric label); issue 22."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, Field, model_validator

from gateway.config.auth import FilerCode
from gateway.config.policies import STRICT
from gateway.durations import Duration


class RateLimit(BaseModel):
    """An intake rate: a token bucket refilled at ``intake_per_second``, ``burst`` deep."""

    model_config = STRICT

    intake_per_second: float | None = Field(
        default=None, gt=0, le=1e6, description="filings accepted per second (per process)"
    )
    burst: int | None = Field(
        default=None, ge=1, le=10_000_000, description="bucket depth (default: one second's)"
    )

    @model_validator(mode="after")
    def _burst_needs_rate(self) -> RateLimit:
        if self.burst is not None and self.intake_per_second is None:
            raise ValueError("burst needs intake_per_second")
        return self

    @property
    def depth(self) -> int:
        """The bucket's depth: ``burst``, else one second's worth (at least 1)."""
        if self.burst is not None:
            return self.burst
        return max(1, math.ceil(self.intake_per_second or 1))


class FilerQuota(RateLimit):
    """`[quotas.filers.CODE]`, `[quotas.default]`: a filer code's intake rate, the
    number of its filings accepted and not yet settled (`max_pending`), and its delivery
    rate on each adapter (`delivery_rate`, `delivery_burst`; see ``rules.pacing``)."""

    max_pending: int | None = Field(
        default=None, ge=1, le=1_000_000_000, description="accepted, not yet settled"
    )
    delivery_rate: float | None = Field(
        default=None, gt=0, le=1e6, description="deliveries claimed per second per adapter"
    )
    delivery_burst: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="delivery bucket depth (default: one second's)",
    )

    @model_validator(mode="after")
    def _delivery_burst_needs_rate(self) -> FilerQuota:
        if self.delivery_burst is not None and self.delivery_rate is None:
            raise ValueError("delivery_burst needs delivery_rate")
        return self

    @property
    def delivery(self) -> tuple[float, int] | None:
        """The delivery bucket (rate per second, depth), or None: not limited."""
        if self.delivery_rate is None:
            return None
        return self.delivery_rate, self.delivery_burst or max(1, math.ceil(self.delivery_rate))


class QuotasSection(BaseModel):
    """`[quotas]`: limits per filer code (`filers`, else `default`) and per token."""

    model_config = STRICT

    default: FilerQuota = Field(default_factory=FilerQuota)
    filers: dict[FilerCode, FilerQuota] = Field(default_factory=dict)
    tokens: dict[str, RateLimit] = Field(default_factory=dict)
    pending_refresh: Duration = Field(
        default=1.0, description="how old a filer's pending count may be before a recount"
    )
    pending_retry_after: Duration = Field(
        default=5.0, description="Retry-After of a refusal by max_pending"
    )

    @property
    def active(self) -> bool:
        """Any limit configured at all (else intake pays nothing for quotas)."""
        limits = [self.default, *self.filers.values(), *self.tokens.values()]
        return any(
            q.intake_per_second is not None or getattr(q, "max_pending", None) is not None
            for q in limits
        )

    def for_filer(self, filer_code: str) -> FilerQuota:
        return self.filers.get(filer_code, self.default)

    @property
    def delivering(self) -> bool:
        """Any delivery rate configured (else the claim pays nothing for them)."""
        return any(q.delivery_rate for q in (self.default, *self.filers.values()))


class MetricsSection(BaseModel):
    """`[metrics]`: filer codes labelled on their own; every other code counts as `other`."""

    model_config = STRICT

    filer_labels: list[FilerCode] = Field(default_factory=list, max_length=200)


class FairnessSection(BaseModel):
    """`[fairness]`: within an adapter, deliveries are served fairly across filer codes in
    proportion to these weights (default 1); see ``gateway.rules.fair``."""

    model_config = STRICT

    weights: dict[FilerCode, Annotated[int, Field(ge=1, le=1000)]] = Field(
        default_factory=dict, description="a filer code's share of each adapter, relative"
    )
