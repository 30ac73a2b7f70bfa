"""The long-running sources (queues, directories): build them, run them, report them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import anyio

from gateway.inbound.intake import Intake
from gateway.inbound.status import SourceStatus


class Consumer(Protocol):
    """A source that runs until cancelled, reporting its health in ``status``."""

    status: SourceStatus

    async def run(self, *, task_status: Any = ...) -> None: ...


def build(intake: Intake, *, environ: Mapping[str, str] | None = None) -> dict[str, Consumer]:
    """A consumer for each ``amqp`` or ``directory`` source (config errors raise now)."""
    out: dict[str, Consumer] = {}
    for source in intake.sources:
        if source.kind == "amqp":
            from gateway.inbound import amqp

            out[source.name] = amqp.QueueConsumer(source=source, intake=intake, environ=environ)
        elif source.kind == "directory":
            from gateway.inbound import directory

            out[source.name] = directory.DirectoryConsumer(source=source, intake=intake)
    return out


def status(running: Mapping[str, Consumer]) -> dict[str, Any]:
    return {name: c.status.as_dict() for name, c in running.items()}


async def run_all(
    running: Mapping[str, Consumer], *, task_status: Any = anyio.TASK_STATUS_IGNORED
) -> None:
    """Run every consumer; ``task_status`` gets the cancel scope that stops them all."""
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            for consumer in running.values():
                await tg.start(consumer.run)
            task_status.started(scope)
