"""The error body every failing answer carries, and ``SHAPE``, the model config of every
answer (frozen, unknown keys refused)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SHAPE = ConfigDict(frozen=True, extra="forbid")


class ErrorBody(BaseModel):
    """What went wrong: a stable code, a sentence, and the fields at fault."""

    model_config = SHAPE

    code: str = Field(description="Stable machine code, e.g. `invalid_input`.")
    message: str = Field(description="One sentence for a person.")
    details: Any = Field(default=None, description="Field paths and reasons, when known.")


class Error(BaseModel):
    """Every 4xx/5xx answer: ``{"error": {"code", "message", "details"}}``."""

    model_config = SHAPE

    error: ErrorBody
