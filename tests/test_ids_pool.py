"""Ids draw their random part from a pool read ahead from the OS; a forked child must not
reuse its parent's unread bytes."""

from __future__ import annotations

import os

from gateway import ids


def test_forked_child_draws_other_random_bytes_than_its_parent() -> None:
    """After a fork, parent and child take different bytes: no two processes make the
    same id in the same millisecond."""
    ids.ulid()  # the pool is filled, with unread bytes left in it
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, ids._random10())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 10)
    os.close(read)
    assert len(child) == 10
    assert child != ids._random10()


def test_pool_refills_when_spent() -> None:
    """Ids keep coming (unique and sorted) across many refills of the pool."""
    made = [ids.new_id("dlv") for _ in range(3 * ids._POOL_BYTES)]
    assert len(set(made)) == len(made)
    assert made == sorted(made)
