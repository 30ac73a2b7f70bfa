"""Configuration: frozen models (unknown keys refused) and ``load_config``.

One TOML file; every key can be overridden from the environment with the prefix
``EDIGW_`` and ``__`` between levels: ``EDIGW_GATEWAY__LISTEN=127.0.0.1:9000``,
``EDIGW_ADAPTERS__OUTBOX__DIRECTORY=/srv/outbox``. A value that looks like JSON
(``[...]``, ``{...}``) is parsed as JSON; anything else is a string that the model
converts (so ``EDIGW_GATEWAY__MAX_BODY_BYTES=2048`` is an int). No globals.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import os
import tomllib
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway import errors, models
from gateway.durations import Duration

ENV_PREFIX = "EDIGW_"
DEFAULT_CONFIG_PATH = Path("config/gateway.toml")

_STRICT = ConfigDict(frozen=True, extra="forbid")


class GatewaySection(BaseModel):
    """`[gateway]`: the process itself."""

    model_config = _STRICT

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


Scope = Literal["submit", "read", "operate"]


def _default_scopes() -> list[Scope]:
    return ["submit", "read"]


class TokenConfig(BaseModel):
    """`[auth.tokens.NAME]`: one bearer token, by the SHA-256 of its secret or from env."""

    model_config = _STRICT

    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    secret_env: str | None = Field(default=None, description="env var holding the secret")
    scopes: list[Scope] = Field(default_factory=_default_scopes)

    @model_validator(mode="after")
    def _one_source(self) -> TokenConfig:
        if (self.sha256 is None) == (self.secret_env is None):
            raise ValueError("give exactly one of sha256 or secret_env")
        return self


class AuthSection(BaseModel):
    """`[auth]`: bearer tokens with scopes; `mode = "none"` only on loopback."""

    model_config = _STRICT

    mode: Literal["none", "token"] = "none"
    tokens: dict[str, TokenConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _tokens_when_on(self) -> AuthSection:
        if self.mode == "token" and not self.tokens:
            raise ValueError("auth mode 'token' needs at least one [auth.tokens.NAME]")
        return self


class RetrySection(BaseModel):
    """`[retry]`: exponential backoff with jitter, an attempt cap and a maximum age."""

    model_config = _STRICT

    max_attempts: int = Field(default=10, ge=1, le=1000)
    initial_delay: Duration = 2.0
    max_delay: Duration = 600.0
    max_age: Duration = 72 * 3600.0
    jitter: Duration = 1.0


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class WindowConfig(BaseModel):
    """`[[calendars.NAME.windows]]`: a weekly window; `end` <= `start` means the next day."""

    model_config = _STRICT

    days: list[Day] = Field(min_length=1, description="days the window STARTS on: mon … sun")
    start: str = Field(pattern=_HHMM, description="local start time, HH:MM")
    end: str = Field(pattern=_HHMM, description="local end time, HH:MM; <= start: next day")
    policy: Literal["hold", "probe"] = Field(
        default="hold", description="hold: send nothing; probe: try at the low probe rate"
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
        return self


class CalendarConfig(BaseModel):
    """`[calendars.NAME]`: recurring maintenance windows in one time zone."""

    model_config = _STRICT

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


class BreakerSection(BaseModel):
    """`[breaker]`: the circuit breaker each adapter has (overridable per adapter)."""

    model_config = _STRICT

    failure_threshold: int = Field(default=5, ge=1, description="consecutive transient failures")
    cooldown: Duration = Field(default=30.0, gt=0, description="first open period")
    max_cooldown: Duration = Field(default=600.0, gt=0, description="cap of the doubling")


class DeadlinesSection(BaseModel):
    """`[deadlines]`: when an undelivered filing with `due_by` is flagged `at_risk`."""

    model_config = _STRICT

    at_risk_margin: Duration = Field(default=4 * 3600.0, ge=0, description="due_by closer than")
    scan_interval: Duration = Field(default=60.0, gt=0, description="how often to look")
    outage_horizon: Duration = Field(
        default=7 * 86400.0, gt=0, description="how far ahead known outages are considered"
    )


class MonitoringSection(BaseModel):
    """`[monitoring]`: metrics, readiness and the dashboard (issue 7)."""

    model_config = _STRICT

    queue_cache: Duration = Field(
        default=5.0, ge=0, description="how long queue figures from the store are reused"
    )
    drain_delay: Duration = Field(
        default=0.0,
        ge=0,
        description="on SIGTERM, /readyz is 503 this long before intake stops (LB drain)",
    )
    dashboard: bool = Field(default=True, description="serve the dashboard at / and /ui/")


_X12_PARTY = r"^[0-9A-Z]{2}:[A-Za-z0-9 .-]{1,15}$"


class AdapterConfig(BaseModel):
    """`[adapters.NAME]`: gateway-side keys; every other key is the adapter's own option."""

    model_config = _STRICT

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

    model_config = _STRICT

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


class AuditSection(BaseModel):
    """`[audit]`: checkpoints, retention and redaction of the audit trail."""

    model_config = _STRICT

    checkpoint_dir: str | None = Field(
        default=None,
        description="where signed checkpoints go (outside the database); "
        "default: audit-checkpoints/ beside the SQLite file, var/audit-checkpoints otherwise",
    )
    checkpoint_every_rows: int = Field(default=1000, ge=1, description="checkpoint every N rows")
    checkpoint_every: Duration = Field(default=300.0, gt=0, description="…or every T (if new rows)")
    retention: Duration = Field(
        default=1826 * 86400.0, gt=0, description="prune refuses rows younger than this (5y)"
    )
    redact_paths: list[str] = Field(
        default_factory=list, description="JSON paths masked in audit details and logs"
    )
    hmac_key: SecretStr | None = Field(
        default=None,
        description="checkpoint HMAC key: set EDIGW_AUDIT__HMAC_KEY, never in the file; "
        "without one a key file is generated in checkpoint_dir on first start",
    )


class SourceConfig(BaseModel):
    """`[sources.NAME]`: where inbound events come from and how they become filings.

    ``kind`` says where they come from (``http``: CloudEvents posted to the API;
    ``amqp``: a RabbitMQ queue; ``directory``: files dropped in a folder). How they
    become filings: ``normalizer`` (``pkg.module:function`` or an entry-point name in
    ``edi_gateway.normalizers``), or the declarative ``map``/``constants``/``filing_types``;
    with neither, the event must already be a filing event (passthrough).
    """

    model_config = _STRICT

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

    model_config = _STRICT

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

    model_config = _STRICT

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

    model_config = _STRICT

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


class Config(BaseModel):
    """The whole configuration."""

    model_config = _STRICT

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

    @field_validator("calendars", mode="before")
    @classmethod
    def _shipped_calendars(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {**DEFAULT_CALENDARS, **value}
        return value

    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    acks: AcksSection = Field(default_factory=AcksSection)
    callbacks: CallbacksSection = Field(default_factory=CallbacksSection)

    @model_validator(mode="after")
    def _routes_name_adapters(self) -> Config:
        for name in self.adapters:
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"adapter name {name!r}: use letters, digits, '-' and '_'")
        for i, route in enumerate(self.routes):
            for name in route.adapters:
                if name not in self.adapters:
                    raise ValueError(f"routes[{i}] names adapter {name!r}, which is not configured")
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


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Nested dict from ``EDIGW_A__B__C=value`` variables (keys lower-cased).

    A name without ``__`` counts only when it is a top-level section holding a JSON
    value (``EDIGW_ROUTES='[...]'``); other ``EDIGW_X`` names (``EDIGW_TOKEN``,
    ``EDIGW_URL``, …) belong to the CLI and are ignored here.
    """
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if any(not p for p in path):
            continue
        if len(path) == 1 and (path[0] not in Config.model_fields or raw.strip()[:1] not in "[{"):
            continue
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[path[-1]] = _env_value(raw)
    return tree


def _env_value(raw: str) -> Any:
    text = raw.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return raw
    return raw


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _key_of(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("options",):
            continue
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts)


def parse_config(data: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Config:
    """Validate a config dict (plus environment overrides) into a ``Config``."""
    merged = _merge(dict(data), env_overrides(environ or {}))
    try:
        return Config.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = _key_of(first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise errors.ConfigError(f"{key or 'config'}: {msg}{more}", key=key or None) from exc


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file at ``path`` and apply ``EDIGW_…`` overrides from ``environ``."""
    environ = os.environ if environ is None else environ
    path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise errors.ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise errors.ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.ConfigError(f"{path}: cannot read: {exc}") from exc
    return parse_config(data, environ)
