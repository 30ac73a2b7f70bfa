"""Configuration: frozen models (unknown keys refused) and ``load_config``.

One TOML file; every key can be overridden from the environment with the prefix
``EDIGW_`` and ``__`` between levels: ``EDIGW_GATEWAY__LISTEN=127.0.0.1:9000``,
``EDIGW_ADAPTERS__OUTBOX__DIRECTORY=/srv/outbox``. A value that looks like JSON
(``[...]``, ``{...}``) is parsed as JSON; anything else is a string that the model
converts (so ``EDIGW_GATEWAY__MAX_BODY_BYTES=2048`` is an int). No globals.

The sections live by subject: ``process`` ([gateway], [monitoring]), ``auth``,
``calendars``, ``adapters`` (adapters and routes), ``events`` (sources, acks,
callbacks), ``policies`` (retry, breaker, deadlines, audit), ``tracing`` ([tracing]),
``root`` (``Config``) and ``load`` (TOML, environment, errors). Callers import them from here.
"""

from gateway.config.adapters import AdapterConfig, RouteConfig
from gateway.config.auth import AuthSection, Scope, TokenConfig
from gateway.config.calendars import DAYS, DEFAULT_CALENDARS, CalendarConfig, Day, WindowConfig
from gateway.config.events import AcksSection, CallbacksSection, SourceConfig, SubscriberConfig
from gateway.config.load import (
    DEFAULT_CONFIG_PATH,
    ENV_PREFIX,
    env_overrides,
    load_config,
    parse_config,
)
from gateway.config.policies import AuditSection, BreakerSection, DeadlinesSection, RetrySection
from gateway.config.process import GatewaySection, MonitoringSection
from gateway.config.quotas import FilerQuota, MetricsSection, QuotasSection, RateLimit
from gateway.config.root import Config
from gateway.config.tracing import TracingSection, traces_url

__all__ = [
    "DAYS",
    "DEFAULT_CALENDARS",
    "DEFAULT_CONFIG_PATH",
    "ENV_PREFIX",
    "AcksSection",
    "AdapterConfig",
    "AuditSection",
    "AuthSection",
    "BreakerSection",
    "CalendarConfig",
    "CallbacksSection",
    "Config",
    "Day",
    "DeadlinesSection",
    "FilerQuota",
    "GatewaySection",
    "MetricsSection",
    "MonitoringSection",
    "QuotasSection",
    "RateLimit",
    "RetrySection",
    "RouteConfig",
    "Scope",
    "SourceConfig",
    "SubscriberConfig",
    "TokenConfig",
    "TracingSection",
    "WindowConfig",
    "env_overrides",
    "load_config",
    "parse_config",
    "traces_url",
]
