"""Answers about filings: submitted (one or a batch, per item), history, rejected page."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from gateway import models
from gateway.api.schemas.errors import SHAPE, ErrorBody


class Submitted(BaseModel):
    """A submitted filing: its id, derived status and deliveries."""

    model_config = SHAPE

    id: str = Field(description="Gateway id (`fil_…`).")
    status: models.FilingStatus
    created: bool = Field(description="False when this repeats an earlier submission.")
    deliveries: list[models.Delivery]


class SubmittedMany(BaseModel):
    """One CloudEvent that its source's normalizer turned into several filings."""

    model_config = SHAPE

    created: bool = Field(description="True when at least one filing is new.")
    filings: list[Submitted]


class BatchAccepted(Submitted):
    """A batch item that became (or repeated) one filing."""

    http_status: Literal[200, 202] = Field(description="202 new, 200 a duplicate.")


class BatchAcceptedMany(SubmittedMany):
    """A batch item (a CloudEvent) that became several filings."""

    http_status: Literal[200, 202] = Field(description="202 when one is new, else 200.")


class BatchRejected(BaseModel):
    """A batch item refused on its own; the rest of the batch is unaffected."""

    model_config = SHAPE

    http_status: int = Field(description="The status a single submission would have had.")
    error: ErrorBody


class BatchResult(BaseModel):
    """``POST /v1/filings/batch``: one result per item, in order."""

    model_config = SHAPE

    accepted: int
    rejected: int
    results: list[BatchAccepted | BatchAcceptedMany | BatchRejected]


class AuditEntry(BaseModel):
    """One row of the hash-chained audit trail."""

    model_config = SHAPE

    seq: int = Field(description="Position in the trail.")
    at: AwareDatetime
    actor: str = Field(description="Token name, `dispatcher`, a source…")
    filing_id: str | None
    delivery_id: str | None
    event: str = Field(description="`filing.accepted`, `delivery.delivered`, …")
    details: dict[str, Any] = Field(description="What changed (sensitive values redacted).")
    prev_hash: str
    hash: str = Field(description="SHA-256 over this row and `prev_hash`.")


class History(BaseModel):
    """``GET /v1/filings/{id}/history``: a filing's audit rows, oldest first."""

    model_config = SHAPE

    filing_id: str
    events: list[AuditEntry]


class RejectedPage(BaseModel):
    """A page of inbound events that could not become filings."""

    model_config = SHAPE

    items: list[models.RejectedEvent]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
