"""The process's own sections: ``[gateway]`` (listen address, store URL, body and intake
limits, leases, workers, allowed hosts and origins, logging) and ``[monitoring]``."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from gateway.config.policies import STRICT
from gateway.durations import Duration


class GatewaySection(BaseModel):
    """`[gateway]`: the process itself."""

    model_config = STRICT

    listen: str = Field(default="127.0.0.1:8080", description="host:port the API listens on")
    store: str = Field(
        default="sqlite:///var/gateway.db", description="sqlite:///… or postgresql://…"
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    max_batch_bytes: int = Field(default=16 * 1_048_576, ge=1024, le=256 * 1_048_576)
    max_pending_intake: int = Field(
        default=4096,
        ge=1,
        le=1_000_000,
        description="filings being accepted at once; beyond it intake answers 503 + Retry-After",
    )
    lease: Duration = Field(default=30.0, gt=0, description="how long a claim holds a delivery")
    scan_interval: Duration = Field(default=1.0, gt=0, description="fallback scan for due work")
    claim_batch: int = Field(default=100, ge=1, le=10_000)
    shutdown_grace: Duration = Field(default=10.0, ge=0)
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="`serve` processes sharing the listen port (SO_REUSEPORT); the first "
        "starts the others and stops them with it",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="`Host` values served (`name` or `name:port`); always also the listen "
        "address and loopback names. Others get 403 (DNS rebinding).",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="browser origins (`https://ops.example.com`) allowed besides the "
        "gateway's own; a request from any other `Origin` gets 403 (cross-site)",
    )
    store_timeout: Duration = Field(
        default=5.0,
        gt=0,
        le=300,
        description="PostgreSQL: connect and statement timeout, and how long a call retries "
        "a lost connection before the API answers 503 store_unavailable",
    )
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("listen must be host:port, e.g. 127.0.0.1:8080")
        return value

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("store must be sqlite:///path or postgresql://…")
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item or any(c in item for c in "/@ \\") or not item.isascii():
                raise ValueError(f"{item!r}: give a host name or host:port, no scheme or path")
        return [v.lower() for v in value]

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for item in value:
            scheme, sep, rest = item.partition("://")
            if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
                raise ValueError(f"{item!r}: an origin is scheme://host[:port], no path")
        return [v.lower() for v in value]

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    def store_label(self) -> str:
        """The store URL with its password masked, for logs and ``/readyz``."""
        scheme, sep, rest = self.store.partition("://")
        if sep and "@" in rest:
            creds, host = rest.rsplit("@", 1)
            return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
        return self.store

    def listens_on_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


class MonitoringSection(BaseModel):
    """`[monitoring]`: metrics, readiness and the dashboard (issue 7)."""

    model_config = STRICT

    queue_cache: Duration = Field(
        default=5.0, ge=0, description="how long queue figures from the store are reused"
    )
    drain_delay: Duration = Field(
        default=0.0,
        ge=0,
        description="on SIGTERM, /readyz is 503 this long before intake stops (LB drain)",
    )
    dashboard: bool = Field(default=True, description="serve the dashboard at / and /ui/")
