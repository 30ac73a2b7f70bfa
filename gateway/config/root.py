"""``Config``, the whole configuration: every section, the shipped calendars merged in,
and the cross-section checks (routes and calendars name configured things)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from gateway.config.adapters import AdapterConfig, RouteConfig
from gateway.config.auth import AuthSection
from gateway.config.calendars import DEFAULT_CALENDARS, CalendarConfig
from gateway.config.events import AcksSection, CallbacksSection, SourceConfig
from gateway.config.policies import (
    STRICT,
    AuditSection,
    BreakerSection,
    DeadlinesSection,
    RetrySection,
)
from gateway.config.process import GatewaySection, MonitoringSection
from gateway.config.quotas import FairnessSection, MetricsSection, QuotasSection
from gateway.config.records import RecordsSection
from gateway.config.tracing import TracingSection


class Config(BaseModel):
    """The whole configuration."""

    model_config = STRICT

    gateway: GatewaySection = Field(default_factory=GatewaySection)
    auth: AuthSection = Field(default_factory=AuthSection)
    retry: RetrySection = Field(default_factory=RetrySection)
    adapters: dict[str, AdapterConfig] = Field(default_factory=dict)
    routes: list[RouteConfig] = Field(default_factory=list)
    audit: AuditSection = Field(default_factory=AuditSection)
    calendars: dict[str, CalendarConfig] = Field(
        default_factory=lambda: {
            k: CalendarConfig.model_validate(v) for k, v in DEFAULT_CALENDARS.items()
        }
    )
    breaker: BreakerSection = Field(default_factory=BreakerSection)
    deadlines: DeadlinesSection = Field(default_factory=DeadlinesSection)
    monitoring: MonitoringSection = Field(default_factory=MonitoringSection)
    tracing: TracingSection = Field(default_factory=TracingSection)

    @field_validator("calendars", mode="before")
    @classmethod
    def _shipped_calendars(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {**DEFAULT_CALENDARS, **value}
        return value

    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    acks: AcksSection = Field(default_factory=AcksSection)
    callbacks: CallbacksSection = Field(default_factory=CallbacksSection)
    records: RecordsSection = Field(default_factory=RecordsSection)
    quotas: QuotasSection = Field(default_factory=QuotasSection)
    metrics: MetricsSection = Field(default_factory=MetricsSection)
    fairness: FairnessSection = Field(default_factory=FairnessSection)

    @model_validator(mode="after")
    def _routes_name_adapters(self) -> Config:
        for name in self.adapters:
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"adapter name {name!r}: use letters, digits, '-' and '_'")
        for i, route in enumerate(self.routes):
            for name in route.adapters:
                if name not in self.adapters:
                    raise ValueError(f"routes[{i}] names adapter {name!r}, which is not configured")
        for name in self.quotas.tokens:
            if name not in self.auth.tokens:
                raise ValueError(f"quotas.tokens.{name} names a token [auth.tokens] lacks")
        for name, section in self.adapters.items():
            for cal in section.calendars:
                if cal not in self.calendars:
                    raise ValueError(
                        f"adapters.{name}.calendars names {cal!r}; known: {sorted(self.calendars)}"
                    )
        return self

    def retry_for(self, adapter: str) -> RetrySection:
        """The retry policy of one adapter: [retry] with its overrides."""
        override = self.adapters[adapter].retry
        if not override:
            return self.retry
        return RetrySection.model_validate({**self.retry.model_dump(), **override})

    def breaker_for(self, adapter: str) -> BreakerSection:
        """The breaker settings of one adapter: [breaker] with its overrides."""
        section = self.adapters.get(adapter)
        if section is None or not section.breaker:
            return self.breaker
        return BreakerSection.model_validate({**self.breaker.model_dump(), **section.breaker})
