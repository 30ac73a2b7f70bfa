"""``POST /v1/rejected-events/{id}/replay`` (scope operate, issue 21): run a rejected
inbound event through today's config once more, with a reason for the audit trail.
The logic is ``gateway.inbound.replay``; this is its HTTP face."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.api import inbound
from gateway.api.handlers import actor_of, read_model, respond
from gateway.api.schemas.errors import SHAPE
from gateway.inbound import replay as replay_mod


class ReplayRequest(BaseModel):
    """What an operator posts to replay a rejected event."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="ReplayRequest")

    reason: str = Field(
        min_length=1, max_length=1000, description="Why (goes into the audit trail)."
    )

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("give a reason: it goes into the audit trail")
        return value.strip()


class ReplayResponse(BaseModel):
    """The outcome of a replay: ``accepted`` (new filings), ``duplicate`` (its filings
    existed already) or ``rejected`` (still bad: it stays listed, with this error)."""

    model_config = SHAPE

    rejected_id: str
    outcome: replay_mod.ReplayOutcome
    filing_ids: list[str] = Field(description="The filings it became (none when rejected).")
    error: dict[str, Any] | None = Field(
        default=None, description="The new error when still rejected (code, message, details)."
    )


async def replay(request: web.Request) -> web.Response:
    """Replay one rejected inbound event (audited with the token's name and the reason)."""
    req = await read_model(request, ReplayRequest, what="a replay")
    done = await replay_mod.replay(
        request.app[inbound.INTAKE],
        request.match_info["id"],
        actor=actor_of(request),
        reason=req.reason,
    )
    return respond(
        ReplayResponse(
            rejected_id=done.rejected_id,
            outcome=done.outcome,
            filing_ids=done.filing_ids,
            error=done.error,
        )
    )


def openapi_paths(op: Any, path_param: Any, ref: Any) -> dict[str, Any]:
    """The OpenAPI entry of this route (``op`` … ``ref`` from ``openapi_paths``)."""
    return {
        "/v1/rejected-events/{id}/replay": {
            "post": op(
                "Replay a rejected inbound event through today's config (audited, with a reason)",
                {200: (ref(ReplayResponse), "accepted, duplicate, or still rejected")},
                fails=(400, 404, 409, 413, 422, 503),
                params=[path_param("id")],
                body={"application/json": {"schema": ref(ReplayRequest)}},
            )
        }
    }
