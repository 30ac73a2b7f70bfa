"""A no-op transport for the benchmarks: every send succeeds at once."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from gateway import models


class NoopOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NoopAdapter:
    """Takes every message and returns a receipt; measures the gateway, not a receiver."""

    Options = NoopOptions

    def __init__(self, *, name: str, options: NoopOptions) -> None:
        self.name, self.options = name, options

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def check(self) -> models.Health:
        return models.Health(ok=True)

    async def send(self, message: models.OutboundMessage) -> models.Receipt:
        return models.Receipt(transport_id=message.delivery_id, status="ok")
