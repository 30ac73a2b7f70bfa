"""What the SQL files name in braces: the state sets the statements filter on, read off
the lifecycle table (so it stays their one source), and the few words a dialect says
differently. ``sansio.queries`` fills every ``{name}`` of ``sql/*/*.sql`` from here when
it loads them; a name missing here fails the load, loudly.
"""

from __future__ import annotations

from gateway import models
from gateway.encoding import x12
from gateway.rules import lifecycle

_E = lifecycle.Event
_S = models.DeliveryState


def _sources(event: lifecycle.Event) -> str:
    return lifecycle.sql_in(lifecycle.sources(event))


#: where a released lease sends its delivery
RELEASED_TO = lifecycle.step(_S.IN_FLIGHT, _E.RELEASED)

COMMON = {
    "retry_from": _sources(_E.OPERATOR_RETRY),
    "cancel_from": _sources(_E.OPERATOR_CANCEL),
    "resend_from": _sources(_E.OPERATOR_RESEND),
    "block_from": _sources(_E.PREDECESSOR_DEAD),
    # a flagged conflict is resolved by close in these states (the table's KEEP rows)
    "close_conflict": lifecycle.sql_in(
        s
        for s in _S
        if lifecycle.step(s, _E.OPERATOR_CLOSE) is lifecycle.KEEP and s is not _S.DELIVERED
    ),
    # what a claim takes from, as the partial indexes name it
    "claimable": "('pending','waiting_retry','deferred','in_flight')",
    # a delivery or filing that needs nothing more
    "settled": "('delivered','acknowledged','cancelled','dead','rejected')",
    # a delivery that no longer holds its key's successors back
    "done": "('delivered','acknowledged','cancelled')",
    # callback states that still go out
    "callback_open": "('pending','waiting_retry','in_flight')",
    "released_to": f"'{RELEASED_TO}'",
    "top_control": str(x12.MAX_CONTROL),
}

#: ``{any_N}``: membership in the list parameter $N (a Python list)
BY_DIALECT = {
    "sqlite": {
        "skip_locked": "",
        "for_update": "",
        **{f"any_{n}": f"IN (SELECT value FROM json_each(${n}))" for n in range(1, 5)},
    },
    "postgres": {
        "skip_locked": " FOR UPDATE SKIP LOCKED",
        "for_update": " FOR UPDATE",
        **{f"any_{n}": f"= ANY(${n})" for n in range(1, 5)},
    },
}


def of(dialect: str) -> dict[str, str]:
    return {**COMMON, **BY_DIALECT[dialect]}
