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

#: filing statuses (and delivery states) that need nothing more
SETTLED = ("delivered", "acknowledged", "cancelled", "dead", "rejected")

#: the columns of every filing and delivery SELECT, in the order ``rows.filing``,
#: ``rows.filing_view`` and ``rows.delivery`` read them
FILING_COLS = (
    "f.seq, f.id, f.filing_type, f.environment, f.reference, f.filer_code, f.idempotency_key, "
    "f.body_hash, f.ordering_key, f.due_by, f.content_type, f.payload, f.payload_is_json, "
    "f.callback_url, f.metadata, f.source, f.received_at, f.status, f.at_risk_at, "
    "f.source_event_id"
)
DELIVERY_COLS = (
    "d.seq, d.id, d.filing_id, d.adapter, d.state, d.attempts, d.available_at, d.last_error, "
    "d.receipt, d.created_at, d.updated_at, d.delivered_at, d.filing_seq, "
    "d.ack_due_at, d.ack_overdue, d.ack, d.ack_conflict"
)

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
    # what a claim takes from, as PostgreSQL's partial indexes name it (SQLite's: with ORs)
    "claimable": "('pending','waiting_retry','deferred','in_flight')",
    "settled": "(" + ",".join(f"'{s}'" for s in SETTLED) + ")",
    # filing statuses still under way (at risk counts only these)
    "unsettled": "(" + ",".join(f"'{s}'" for s in models.FilingStatus if s not in SETTLED) + ")",
    # callback states that still go out
    "callback_open": "('pending','waiting_retry','in_flight')",
    "released_to": f"'{RELEASED_TO}'",
    # $1 (now), or later while a lease kept past a late record lasts (status.sending)
    "not_before_lease_end": "CASE WHEN lease_owner IS NOT NULL AND available_at > $1 "
    "THEN available_at ELSE $1 END",
    "top_control": str(x12.MAX_CONTROL),
    "f_cols": FILING_COLS,
    "d_cols": DELIVERY_COLS,
}

#: membership of a column in a list parameter (a Python list); ``{any_N}``: of parameter $N
MEMBER = {"sqlite": "IN (SELECT value FROM json_each({}))", "postgres": "= ANY({})"}
BY_DIALECT = {
    "sqlite": {
        # claimable, and not done, as SQLite's partial indexes say them (migration 12)
        "state_claimable": "(state = 'pending' OR state = 'waiting_retry' OR "
        "state = 'deferred' OR state = 'in_flight')",
        "holds_key": "state <> 'delivered' AND state <> 'acknowledged' AND state <> 'cancelled'",
        "due_index": " INDEXED BY deliveries_due",
        "skip_locked": "",
        "for_update": "",
        **{f"any_{n}": MEMBER["sqlite"].format(f"${n}") for n in range(1, 5)},
        # the JSON accessors of the X12 gaps report (x12gaps)
        "x12_ack_interchange": "json_extract(k.document, '$.interchange_control')",
        "x12_ack_group": "json_extract(k.document, '$.group_control')",
        "x12_sent_interchange": "json_extract(u.details, '$.receipt.x12.interchange_control')",
        "x12_row_attempts": "json_extract(u.details, '$.attempts')",
        "x12_row_error": "json_extract(u.details, '$.error')",
    },
    "postgres": {
        "state_claimable": f"state IN {COMMON['claimable']}",
        "holds_key": "state NOT IN ('delivered','acknowledged','cancelled')",
        "due_index": "",
        "skip_locked": " FOR UPDATE SKIP LOCKED",
        "for_update": " FOR UPDATE",
        **{f"any_{n}": MEMBER["postgres"].format(f"${n}") for n in range(1, 5)},
        "x12_ack_interchange": "(k.document::json ->> 'interchange_control')::bigint",
        "x12_ack_group": "(k.document::json ->> 'group_control')::bigint",
        "x12_sent_interchange": "(u.details::json #>> '{receipt,x12,interchange_control}')::bigint",
        "x12_row_attempts": "(u.details::json ->> 'attempts')::bigint",
        "x12_row_error": "(u.details::json ->> 'error')",
    },
}


def of(dialect: str) -> dict[str, str]:
    return {**COMMON, **BY_DIALECT[dialect]}
