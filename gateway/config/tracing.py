"""``[tracing]``: where OpenTelemetry spans go (OTLP over HTTP), or nowhere.

Tracing is on when ``otlp_endpoint`` is set here or the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is in the
environment; otherwise it is off and costs nothing (``gateway.tracing``).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from gateway.config.policies import STRICT


class TracingSection(BaseModel):
    """`[tracing]`: OpenTelemetry export."""

    model_config = STRICT

    otlp_endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s]+$",
        description="OTLP/HTTP base URL (the collector's, e.g. http://127.0.0.1:4318); spans go "
        "to <base>/v1/traces. Unset: OTEL_EXPORTER_OTLP_ENDPOINT, else tracing is off",
    )
    service_name: str = Field(
        default="edi-gateway", min_length=1, max_length=100, description="resource service.name"
    )
    export_timeout: float = Field(default=10.0, gt=0, le=300, description="seconds per export")


def traces_url(section: TracingSection, environ: dict[str, str]) -> str | None:
    """The OTLP/HTTP traces URL, or None when tracing is off.

    The config wins; then ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (a full URL, as the
    specification says) and ``OTEL_EXPORTER_OTLP_ENDPOINT`` (a base URL).
    """
    base = section.otlp_endpoint
    if base is None:
        full = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        if full:
            return full
        base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or None
    if base is None:
        return None
    base = base.rstrip("/")
    return base if base.endswith("/v1/traces") else f"{base}/v1/traces"
