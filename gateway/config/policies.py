"""Policies other sections share or reuse per adapter: retry backoff, the circuit
breaker, due-by deadlines and audit checkpoints and retention; and ``STRICT``, the
model config every section uses (frozen, unknown keys refused)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from gateway.durations import Duration

STRICT = ConfigDict(frozen=True, extra="forbid")


class RetrySection(BaseModel):
    """`[retry]`: exponential backoff with jitter, an attempt cap and a maximum age."""

    model_config = STRICT

    max_attempts: int = Field(default=10, ge=1, le=1000)
    initial_delay: Duration = 2.0
    max_delay: Duration = 600.0
    max_age: Duration = 72 * 3600.0
    jitter: Duration = 1.0


class BreakerSection(BaseModel):
    """`[breaker]`: the circuit breaker each adapter has (overridable per adapter)."""

    model_config = STRICT

    failure_threshold: int = Field(default=5, ge=1, description="consecutive transient failures")
    cooldown: Duration = Field(default=30.0, gt=0, description="first open period")
    max_cooldown: Duration = Field(default=600.0, gt=0, description="cap of the doubling")


class DeadlinesSection(BaseModel):
    """`[deadlines]`: when an undelivered filing with `due_by` is flagged `at_risk`."""

    model_config = STRICT

    at_risk_margin: Duration = Field(default=4 * 3600.0, ge=0, description="due_by closer than")
    scan_interval: Duration = Field(default=60.0, gt=0, description="how often to look")
    outage_horizon: Duration = Field(
        default=7 * 86400.0, gt=0, description="how far ahead known outages are considered"
    )


class AuditSection(BaseModel):
    """`[audit]`: checkpoints, retention and redaction of the audit trail."""

    model_config = STRICT

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
