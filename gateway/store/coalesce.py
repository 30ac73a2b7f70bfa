"""Group commit by kind of call: concurrent calls of one kind share one store operation.

A ``Coalescer`` queues the calls made while its previous batch is running and hands
them to ``run`` together, so N concurrent ``accept`` (or ``complete``) calls cost one
transaction, one audit-lock hold and one WAL flush instead of N. Each caller resumes
only when its batch's transaction has committed (or failed): ``run`` is a whole
``_write`` of the store, so nobody hears "done" before COMMIT. PostgreSQL batches
accepts, completions and reads this way; SQLite (whose writer thread already shares one
transaction among whatever is queued) batches accepts and completions, so a batch of them
is one operation of that transaction: one fair-state read, one audit head read, one audit
insert and one status refresh for all.

The batch runs in a task of its own, not in any caller's: a caller that is cancelled
while waiting (a client that hung up) cancels neither the others' work nor its own,
which then commits or fails as if it had waited, as SQLite's writer thread does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import anyio

A = TypeVar("A")
R = TypeVar("R")

#: one caller's outcome in a batch: (True, value) or (False, the exception it raises)
Outcome = tuple[bool, Any]


def settle(fut: asyncio.Future[Any], outcome: Outcome) -> None:
    """Hand a waiting caller its outcome (nothing when it gave up waiting)."""
    if fut.done():
        return
    ok, value = outcome
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


class Coalescer(Generic[A, R]):
    """Runs ``run(args)`` for the calls queued meanwhile, up to ``max_batch`` at a time.

    ``run`` returns one ``Outcome`` per argument, in order; when it raises, every
    call of the batch raises that exception.
    """

    def __init__(
        self, run: Callable[[list[A]], Awaitable[list[Outcome]]], *, max_batch: int = 256
    ) -> None:
        self._run = run
        self.max_batch = max_batch
        self._queue: list[tuple[A, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        #: calls and batches so far (how much coalescing happened)
        self.calls = 0
        self.batches = 0

    async def submit(self, arg: A) -> R:
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((arg, fut))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                self.calls += len(batch)
                self.batches += 1
                try:
                    outcomes = await self._run([arg for arg, _ in batch])
                except Exception as exc:  # the whole batch failed: each caller hears why
                    outcomes = [(False, exc)] * len(batch)
                for (_, fut), outcome in zip(batch, outcomes, strict=True):
                    settle(fut, outcome)
        finally:
            self._task = None
            for _, fut in self._queue:  # only when the drain itself was cancelled (close)
                if not fut.done():
                    fut.cancel()
            self._queue = []

    async def wait_idle(self) -> None:
        """Wait until the running batch (if any) and the calls queued behind it are done."""
        task = self._task
        if task is not None:
            with anyio.CancelScope(shield=True):
                await asyncio.wait({task}, timeout=30)
