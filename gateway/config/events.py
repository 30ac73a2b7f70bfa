"""Events in and out: ``[sources.NAME]`` (inbound CloudEvents, AMQP queues, directories),
``[acks]`` and ``[callbacks]`` (signed status webhooks and their subscribers)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from gateway import models
from gateway.config.policies import STRICT, RetrySection
from gateway.durations import Duration


class SourceConfig(BaseModel):
    """`[sources.NAME]`: where inbound events come from and how they become filings.

    ``kind`` says where they come from (``http``: CloudEvents posted to the API;
    ``amqp``: a RabbitMQ queue; ``directory``: files dropped in a folder). How they
    become filings: ``normalizer`` (``pkg.module:function`` or an entry-point name in
    ``edi_gateway.normalizers``), or the declarative ``map``/``constants``/``filing_types``;
    with neither, the event must already be a filing event (passthrough).
    """

    model_config = STRICT

    kind: Literal["http", "amqp", "directory"] = "http"
    types: list[str] = Field(
        default_factory=list, description="CloudEvent `type` globs this source handles"
    )
    sources: list[str] = Field(
        default_factory=list, description="CloudEvent `source` globs (empty: any)"
    )
    normalizer: str | None = Field(default=None, description="'pkg.module:function' or a name")
    map: dict[str, str] = Field(
        default_factory=dict, description="filing field → dotted path in the internal event"
    )
    constants: dict[str, Any] = Field(default_factory=dict, description="filing field → value")
    filing_types: dict[str, models.FilingType] = Field(
        default_factory=dict, description="lookup: value at map.filing_type → filing type"
    )
    # amqp
    url: str | None = Field(default=None, description="amqp://… (credentials: prefer url_env)")
    url_env: str | None = Field(default=None, description="env var holding the AMQP URL")
    queue: str | None = None
    declare: bool = Field(default=True, description="declare the queue (durable) at start")
    prefetch: int = Field(default=32, ge=1, le=10_000)
    reconnect_max: Duration = Field(default=30.0, gt=0, description="longest reconnect backoff")
    # directory
    directory: str | None = None
    pattern: str = "*.json"
    poll_interval: Duration = Field(default=1.0, gt=0)

    @field_validator("map", mode="before")
    @classmethod
    def _flatten_map(cls, value: Any) -> Any:
        """``[sources.X.map.metadata] a = "p"`` is the same as ``"metadata.a" = "p"``."""
        if not isinstance(value, Mapping):
            return value
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, Mapping):
                out.update({f"{key}.{k}": v for k, v in cls._flatten_map(item).items()})
            else:
                out[key] = item
        return out

    @model_validator(mode="after")
    def _kind_needs(self) -> SourceConfig:
        if self.kind == "amqp" and not self.queue:
            raise ValueError("an amqp source needs 'queue'")
        if self.kind == "directory" and not self.directory:
            raise ValueError("a directory source needs 'directory'")
        if self.kind == "http" and not self.types and not self.sources:
            raise ValueError("an http source needs 'types' (CloudEvent type globs) to match")
        if self.normalizer is not None and (self.map or self.constants or self.filing_types):
            raise ValueError("give either 'normalizer' or 'map'/'constants', not both")
        if self.filing_types and "filing_type" not in self.map:
            raise ValueError("'filing_types' looks up map.filing_type, which is not set")
        return self


class AcksSection(BaseModel):
    """`[acks]`: how acknowledgements are handled."""

    model_config = STRICT

    resubmit_codes: list[str] = Field(
        default_factory=list,
        description="reject codes that mean an infrastructure failure (ACE 'E90'): resent "
        "automatically with backoff instead of going to `rejected`",
    )
    overdue_scan: Duration = Field(default=5.0, gt=0, description="how often deadlines are checked")
    inbox_poll: Duration = Field(
        default=1.0, gt=0, description="pause before a failed receive() loop starts again"
    )


class SubscriberConfig(BaseModel):
    """`[callbacks.subscribers.NAME]`: the signing secret for callback URLs on some hosts."""

    model_config = STRICT

    hosts: list[str] = Field(min_length=1, description="`host` or `host:port` entries")
    secret_env: str | None = Field(default=None, description="env var holding `whsec_…`")
    secret_file: Path | None = Field(default=None, description="file holding `whsec_…`")

    @model_validator(mode="after")
    def _one_source(self) -> SubscriberConfig:
        if (self.secret_env is None) == (self.secret_file is None):
            raise ValueError("give exactly one of secret_env or secret_file")
        return self


class CallbacksSection(BaseModel):
    """`[callbacks]`: status webhooks to `callback_url`, signed per Standard Webhooks."""

    model_config = STRICT

    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="`host` or `host:port`; a callback URL must match one. Loopback, private, "
        "link-local and IPv4-mapped addresses only when an entry names them.",
    )
    subscribers: dict[str, SubscriberConfig] = Field(default_factory=dict)
    timeout: Duration = Field(default=10.0, gt=0)
    concurrency: int = Field(default=4, ge=1, le=100)
    retry: RetrySection = Field(
        default_factory=lambda: RetrySection(max_attempts=12, max_age=24 * 3600.0)
    )
