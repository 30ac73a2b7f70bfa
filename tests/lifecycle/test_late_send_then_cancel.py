"""A history the lifecycle model found (2026-12-03), replayed step by step on SQLite: a
send whose lease was lost is recorded while a newer claim's send of the same delivery is
still on the wire; the late record moves the delivery to ``delivered`` and fences the newer
holder off, so the store no longer knows a send is in progress. An ack asking for a resend
and an operator's cancel then leave the delivery ``cancelled``, and its key's next filing
is sent while the cancelled one's send may still arrive after it (invariant 4).

Not fixed yet (``xfail``, strict: the day it passes, the marker must go). The fix belongs
to the lifecycle (``store/complete.late_sent``): a late send on an ``in_flight`` delivery
whose lease is live must leave the store knowing that a send is in progress (refuse the
cancel, hold the key) until the holder reports or its lease expires.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lifecycle import harness
from tests.lifecycle.invariants import Violation
from tests.lifecycle.machine import LifecycleMachine

#: (rule, arguments) as hypothesis printed the shrunk history
STEPS: list[tuple[str, dict[str, object]]] = [
    ("accept", {"entry": False, "key": 0}),
    ("accept", {"entry": True, "key": 1}),
    *[("dispatch", {"which": 0})] * 8,
    ("accept", {"entry": False, "key": 0}),
    *[("dispatch", {"which": 0})] * 5,
    ("dispatch", {"which": 1}),
    *[("dispatch", {"which": 0})] * 2,
    ("finish_send", {"i": 0, "outcome": "took"}),
    ("accept", {"entry": False, "key": 0}),
    *[("dispatch", {"which": 0})] * 2,
    ("restart", {"graceful": False}),
    ("time_passes", {"what": "+31s"}),
    ("dispatch", {"which": 0}),
    ("time_passes", {"what": "+31s"}),
    ("finish_send", {"i": 0, "outcome": "took"}),
    ("dispatch", {"which": 0}),
    ("finish_send", {"i": 0, "outcome": "took"}),
    ("ack", {"again": False, "i": 0, "kind": "accepted"}),
    ("ack", {"again": False, "i": 1, "kind": "resubmit"}),
    ("operator", {"action": "cancel", "adapter": None, "bulk": "cancel", "i": 1, "state": 0}),
    ("dispatch", {"which": 0}),
]


@pytest.mark.xfail(
    strict=True,
    raises=Violation,
    reason="a product bug, not the machine: a late send fences a live send, then a cancel "
    "frees its key (see the docstring); xpasses, and so fails, once fixed",
)
@pytest.mark.timeout(120)
def test_a_cancelled_delivery_with_a_send_on_the_wire_holds_its_key(tmp_path: Path) -> None:
    machine_type = type(
        "SqliteLifecycleMachine",
        (LifecycleMachine,),
        {"make_backend": staticmethod(harness.sqlite_backend(tmp_path)), "tmp_path": tmp_path},
    )
    machine = machine_type()
    try:
        machine.the_lifecycle_holds()
        for rule, args in STEPS:
            getattr(machine, rule)(**args)
            machine.the_lifecycle_holds()
    finally:
        machine.teardown()
