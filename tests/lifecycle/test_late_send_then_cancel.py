"""A history the lifecycle model found (2026-12-03), replayed step by step on SQLite: a
send whose lease was lost is recorded while a newer claim's send of the same delivery is
still on the wire (its lease live). The late record used to move the delivery to
``delivered`` and fence the newer holder off, so the store no longer knew a send was in
progress; an ack asking for a resend and an operator's cancel then left the delivery
``cancelled``, and its key's next filing was sent while the cancelled one's send could
still arrive after it (invariant 4).

Now the newer claim's lease stays on the row (``store/complete.late_sent``) and the cancel
is refused until that send reports or its lease runs out unrenewed
(``tests/store/test_send_in_progress.py`` tests each part on both backends).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lifecycle import harness
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
