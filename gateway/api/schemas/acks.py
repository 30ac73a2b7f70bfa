"""Answers about acknowledgements and status callbacks."""

from __future__ import annotations

from pydantic import BaseModel, Field

from gateway import models
from gateway.api.schemas.errors import SHAPE


class AckReceipt(BaseModel):
    """``POST /v1/acks``: every ack stored from the document and what it did."""

    model_config = SHAPE

    acks: list[models.AckRecord] = Field(description="Without `ack.raw`.")
    matched: int
    unmatched: int
    duplicates: int


class AckList(BaseModel):
    """``GET /v1/acks``: acks, newest first."""

    model_config = SHAPE

    items: list[models.AckRecord]


class FilingAcks(BaseModel):
    """``GET /v1/filings/{id}/acks``: one filing's acks, newest first."""

    model_config = SHAPE

    filing_id: str
    items: list[models.AckRecord]


class Resent(BaseModel):
    """``POST /v1/filings/{id}/resend``: the deliveries sent again, and the filing after."""

    model_config = SHAPE

    resent: list[str] = Field(description="Delivery ids.")
    filing: models.FilingView


class AckClosed(BaseModel):
    """``POST /v1/filings/{id}/close-ack``: deliveries no longer waiting for an ack."""

    model_config = SHAPE

    closed: list[str] = Field(description="Delivery ids.")
    filing: models.FilingView


class CallbackList(BaseModel):
    """``GET /v1/callbacks``: status callbacks, newest first."""

    model_config = SHAPE

    items: list[models.CallbackView]
