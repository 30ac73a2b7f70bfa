"""The real parts the lifecycle machine drives: a gated receiver, step-by-step sends, stores.

* ``Receiver`` / ``GatedAdapter``: an adapter whose ``send`` parks on a per-send gate until
  the machine decides the outcome (took it, transient, permanent, outage, message fault).
  What the receiver took goes into its own list, independent of the gateway's store.
* ``Sends``: what ``Dispatcher.dispatch_once`` needs of a task group (``start_soon``), made
  of plain asyncio tasks on the machine's loop, so a send can stay parked across steps
  while the machine posts acks and operator actions; ``parked()`` waits until every send
  just started sits at its gate (or ended before reaching it).
* ``sqlite_backend`` / ``postgres_backend``: open a store on a fresh database, and again on
  the same database after a restart.
"""

from __future__ import annotations

import asyncio
import contextvars
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from gateway import config, errors, models, values
from gateway.encoding import x12
from gateway.store import base, postgres, sqlite
from tests.store.conftest import with_schema

#: a failure caused by the message itself. ``errors.MessageError`` is on its way to main
#: (issue 15); until it lands the adapter raises what the gateway has today for it.
MESSAGE_ERROR: type[errors.DeliveryError] = getattr(errors, "MessageError", errors.PermanentError)

#: how long a step may wait for the gateway to reach a gate or settle a send: a deadlock
#: guard, never a pause (every wait ends on an event well before it)
STEP_TIMEOUT_S = 60.0

OUTCOMES = ("took", "transient", "permanent", "outage", "message_fault")


#: the X12 parties of the ``copy`` adapter (codec x12): its acks correlate by control number
OURS, THEIRS = "ZZ:MAEU", "ZZ:CBPACE"
#: the text payload of a fan-out filing: one ocean manifest transaction set
X12_PAYLOAD = "ST*309*0001~M10*MAEU*O*US*MAERSK KENTUCKY*001~P4*4601*20261203~SE*4*0001~"


def lifecycle_config(tmp_path: Path) -> config.Config:
    """Two adapters (``entry`` filings fan out to both; ``copy`` envelopes them in X12 with
    control numbers per attempt), small retry and breaker figures, a lease of 30 s, ack
    deadlines, and E90 as the resubmit code."""
    return config.parse_config(
        {
            "gateway": {"store": f"sqlite:///{tmp_path / 'unused.db'}", "lease": "30s"},
            "retry": {
                "max_attempts": 4,
                "initial_delay": "5s",
                "max_delay": "60s",
                "max_age": "2h",
                "jitter": "0s",
            },
            "breaker": {"failure_threshold": 3, "cooldown": "30s", "max_cooldown": "2m"},
            "adapters": {
                "ace": {"type": "filedrop", "directory": str(tmp_path / "ace"), "concurrency": 3},
                "copy": {
                    "type": "filedrop",
                    "directory": str(tmp_path / "copy"),
                    "concurrency": 3,
                    "codec": "x12",
                    "x12_sender": OURS,
                    "x12_receiver": THEIRS,
                    "x12_functional_id": "SO",
                },
            },
            "routes": [
                {"filing_types": ["*"], "adapters": ["ace"], "ack_within": "2m"},
                {"filing_types": ["entry"], "adapters": ["copy"]},
            ],
            "acks": {"resubmit_codes": ["E90"]},
        },
        {},
    )


@dataclass(frozen=True, slots=True)
class Took:
    """One message the receiver took."""

    delivery_id: str
    adapter: str
    attempt: int
    #: the delivery's epoch (its operator resends and resubmissions so far) at the take
    epoch: int
    #: the send started after the delivery's first positive ack, with no operator resend
    #: of it since that ack
    unasked: bool
    #: (interchange, group) control numbers of an X12 message
    controls: tuple[int, int] | None = None


@dataclass(eq=False)
class Gate:
    """One send parked at the receiver's door, waiting for the machine's decision."""

    message: models.OutboundMessage
    owner: str
    #: started after the delivery's first positive ack, with no operator resend since
    unasked: bool
    #: the delivery's claims (``delivery.in_flight`` rows) before the one of this send
    claims_before: int
    decided: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: str | None = None
    #: the dispatcher's task running this send
    task: asyncio.Task[Any] | None = None
    #: the end of its claim's lease as the machine knows it (set by the machine when the
    #: send starts, moved by its dispatcher's heartbeats)
    lease_until: datetime | None = None
    #: its lease ran out with no heartbeat: the gateway may presume the sender dead
    expired: bool = False

    def open(self, outcome: str) -> None:
        self.outcome = outcome
        self.decided.set()


@dataclass
class Receiver:
    """Both adapters' far side: sends in progress, and what was taken, in order."""

    #: every send that reached the receiver's door, in order
    started: list[Gate] = field(default_factory=list)
    waiting: list[Gate] = field(default_factory=list)
    taken: list[Took] = field(default_factory=list)
    #: set by the machine: delivery id → (epoch, unasked, claims) as its audit replay
    #: knows them (``invariants.Trail.context``)
    context_of: Callable[[str], tuple[int, bool, int]] = lambda _d: (0, False, 0)


class GatedAdapter:
    """An adapter whose every send waits at a gate until the machine opens it."""

    def __init__(self, name: str, receiver: Receiver) -> None:
        self.name = name
        self.receiver = receiver

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def check(self) -> models.Health:
        return models.Health(ok=True)

    async def send(self, message: models.OutboundMessage) -> models.Receipt:
        _, unasked, claims = self.receiver.context_of(message.delivery_id)
        gate = Gate(
            message=message, owner=PARKED.get().owner, unasked=unasked, claims_before=claims
        )
        gate.task = asyncio.current_task()
        self.receiver.started.append(gate)
        self.receiver.waiting.append(gate)
        PARKED.get().arrived(gate)
        try:
            await gate.decided.wait()
        finally:
            self.receiver.waiting.remove(gate)
        outcome = gate.outcome
        if outcome == "took":
            epoch, _, _ = self.receiver.context_of(message.delivery_id)
            self.receiver.taken.append(
                Took(
                    message.delivery_id,
                    self.name,
                    message.attempt,
                    epoch,
                    gate.unasked,
                    controls_of(message),
                )
            )
            return models.Receipt(transport_id=f"rcv-{len(self.receiver.taken)}", status="202")
        if outcome == "transient":
            raise errors.TransientError("receiver answered 503")
        if outcome == "permanent":
            raise errors.PermanentError("receiver answered 400: schema violation")
        if outcome == "outage":
            raise errors.OutageError("receiver down for maintenance")
        assert outcome == "message_fault", outcome
        raise MESSAGE_ERROR("the message cannot be carried: a header with a control character")


def controls_of(message: models.OutboundMessage) -> tuple[int, int] | None:
    """ISA13 and GS06 of an X12 message, as the receiver reads them to answer it."""
    if not message.content_type.startswith("application/edi-x12"):
        return None
    _, segments = x12.split_segments(message.body.decode())
    group = next(s for s in segments if s[0] == "GS")
    return int(segments[0][13]), int(group[6])


@dataclass(eq=False)
class Parked:
    """One send task's arrival at its gate (``gate`` None: it ended before reaching one)."""

    owner: str
    done: asyncio.Future[Gate | None]

    def arrived(self, gate: Gate | None) -> None:
        if not self.done.done():
            self.done.set_result(gate)


PARKED: contextvars.ContextVar[Parked] = contextvars.ContextVar("PARKED")


class Sends:
    """A task group for one dispatcher driven step by step: one asyncio task per send."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.tasks: set[asyncio.Task[None]] = set()
        self._new: list[Parked] = []
        self._claims: dict[asyncio.Task[None], values.Claim] = {}

    def claims(self) -> list[values.Claim]:
        """The claims whose sends are still running (what the dispatcher's heartbeat renews)."""
        return list(self._claims.values())

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        parked = Parked(self.owner, asyncio.get_running_loop().create_future())
        self._new.append(parked)

        async def run() -> None:
            PARKED.set(parked)
            try:
                await fn(*args)
            finally:
                parked.arrived(None)

        task = asyncio.get_running_loop().create_task(run())
        self.tasks.add(task)
        if args and isinstance(args[0], values.Claim):
            self._claims[task] = args[0]

        def done(t: asyncio.Task[None]) -> None:
            self.tasks.discard(t)
            self._claims.pop(t, None)

        task.add_done_callback(done)

    async def parked(self) -> None:
        """Wait until every send started since the last call sits at its gate or ended."""
        new, self._new = self._new, []
        if new:
            await asyncio.wait_for(asyncio.gather(*(p.done for p in new)), STEP_TIMEOUT_S)

    async def crash(self) -> None:
        """The process dies: every send still parked is gone, nothing more is recorded."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def settle(gate: Gate) -> None:
    """Wait until the send behind an opened ``gate`` has ended (its outcome stored)."""
    assert gate.task is not None
    await asyncio.wait_for(asyncio.shield(gate.task), STEP_TIMEOUT_S)


# --- backends --------------------------------------------------------------------------


@dataclass
class Backend:
    """Opens stores on one database: the first, and again after each restart."""

    name: str
    open: Callable[[], Awaitable[base.Store]]
    drop: Callable[[], Awaitable[None]]


def sqlite_backend(tmp_path: Path) -> Callable[[], Awaitable[Backend]]:
    async def make() -> Backend:
        path = tmp_path / f"life-{secrets.token_hex(4)}.db"

        async def open_() -> base.Store:
            store = sqlite.SqliteStore(path, synchronous="normal")  # durability is not on trial
            await store.open()
            await store.migrate()
            return store

        async def drop() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

        return Backend("sqlite", open_, drop)

    return make


def postgres_backend(dsn: str) -> Callable[[], Awaitable[Backend]]:
    async def make() -> Backend:
        schema = f"edigw_life_{secrets.token_hex(5)}"
        admin = await asyncpg.connect(dsn)
        await admin.execute(f"CREATE SCHEMA {schema}")

        async def open_() -> base.Store:
            store = postgres.PostgresStore(with_schema(dsn, schema), max_size=2, retry_s=3.0)
            await store.open()
            await store.migrate()
            return store

        async def drop() -> None:
            # the audit triggers refuse TRUNCATE and DELETE, not DROP
            await admin.execute(f"DROP SCHEMA {schema} CASCADE")
            await admin.close()

        return Backend("postgres", open_, drop)

    return make
