"""The long-running sources (queues, directories): build them, run them, report them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import anyio
import structlog

from gateway.inbound.intake import Intake
from gateway.inbound.status import SourceStatus

log = structlog.get_logger("gateway.inbound")

#: a consumer that fails unexpectedly is started again after this long, doubling up to
#: ``RESTART_MAX_S`` while it keeps failing within that time of its last start
RESTART_FIRST_S = 1.0
RESTART_MAX_S = 60.0


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
            for name, consumer in running.items():
                await tg.start(supervise, name, consumer)
            task_status.started(scope)


async def supervise(
    name: str, consumer: Consumer, *, task_status: Any = anyio.TASK_STATUS_IGNORED
) -> None:
    """Run one consumer for good. Consumers handle the failures they expect (a broker away, a
    directory unreadable) themselves; anything else (a bug, an error nobody mapped) is logged
    with its traceback, shown on the source's status and the consumer started again after a
    backoff, so one source's fault never ends HTTP intake or the other sources. What the
    consumer had taken is already settled: each event is acknowledged only after the store
    has it. Cancellation passes through."""
    task_status.started()
    wait = RESTART_FIRST_S
    while True:
        began = anyio.current_time()
        try:
            await consumer.run()
        except Exception as exc:  # the supervisor's purpose
            if anyio.current_time() - began > RESTART_MAX_S:
                wait = RESTART_FIRST_S  # it ran well for a while: this is a new failure
            consumer.status.degraded(f"crashed: {exc!r}; restarting in {wait:g} s")
            log.error("source.crashed", source=name, restart_in_s=wait, exc_info=exc)
        else:
            return
        await anyio.sleep(wait)
        wait = min(wait * 2, RESTART_MAX_S)
