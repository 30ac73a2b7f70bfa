"""The delivery lifecycle as data: (state, event) → the next state, or a refusal and why.

This table is the one place where the legal moves of a delivery are written down. The
dispatcher names the event an outcome is (``sent``, ``transient_failure``…), the ack
service the event an acknowledgement is, the operator actions theirs; the stores apply
``step(state, event)`` inside their transactions and take the state sets their SQL
filters on from ``sources(event)``. Nothing else decides where a delivery goes next.

Two rules matter most to a filer, and the table encodes both:

* **A send that happened is always recorded.** ``sent`` is legal from every state: a
  send whose lease was lost (the process stalled, another claim took over) still moves
  a not-yet-sent delivery to ``delivered`` and keeps its receipt; on a delivery already
  sent it is history (a duplicate on the wire, shown, never hidden). A cancel of an
  ``in_flight`` delivery is refused (409 ``delivery_in_flight``): the send decides.
  **A send in progress is more than the state ``in_flight``**: when an older send is
  recorded late while a newer claim is sending, the delivery moves on (to ``delivered``)
  but the newer claim's lease stays on it; until that send reports or its lease runs
  out unrenewed, operators' actions are refused as for ``in_flight``
  (``store.status.sending``).
* **A positive acknowledgement is never undone by the gateway on its own.** After
  ``acknowledged`` every negative or resubmit ack is a *conflict*: stored, flagged on
  the delivery (``ack_conflict``) for a person, and nothing else changes. Only an
  operator's ``resend`` (with a reason, audited) sends an acknowledged filing again.

Reading a row: ``(state, event): to`` where ``to`` is a state (the delivery moves, one
audit row), ``KEEP`` (history only: an audit row, no move), ``CONFLICT`` (history plus
the ``ack_conflict`` flag) or a ``Refuse`` (the caller answers 409 with its code).
Pairs not in the table are refused as ``illegal``. ``python -m gateway.rules.lifecycle``
prints the state diagram the README shows (a test keeps the two equal).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from gateway.models import DeliveryState as S


class Event(StrEnum):
    """What can happen to a delivery."""

    CLAIMED = "claimed"  # the dispatcher takes it for an attempt (an expired lease: again)
    SENT = "sent"  # the receiver took it (a receipt)
    TRANSIENT_FAILURE = "transient_failure"  # try again later: an attempt spent
    RETRIES_EXHAUSTED = "retries_exhausted"  # a transient failure with no budget left
    PERMANENT_FAILURE = "permanent_failure"  # the receiver refused it for good
    MESSAGE_FAULT = "message_fault"  # the message itself cannot be encoded or carried
    OUTAGE_DEFERRED = "outage_deferred"  # receiver down or window: no attempt spent
    RELEASED = "released"  # a stopping process hands back its lease
    PREDECESSOR_DEAD = "predecessor_dead"  # an earlier delivery of its key died
    PREDECESSOR_RELEASED = "predecessor_released"  # …and was retried or cancelled
    ACK_ACCEPTED = "ack_accepted"
    ACK_REJECTED = "ack_rejected"
    ACK_RESUBMIT = "ack_resubmit"  # a rejection whose code asks for a new transmission
    ACK_OVERDUE = "ack_overdue"  # no answer by ack_due_at: flagged, never resent
    OPERATOR_RETRY = "operator_retry"
    OPERATOR_CANCEL = "operator_cancel"
    OPERATOR_RESEND = "operator_resend"  # needs a reason; audited
    OPERATOR_CLOSE = "operator_close"  # stop waiting for an ack / resolve a conflict


@dataclass(frozen=True, slots=True)
class Refuse:
    """A move the table does not allow: the code a 409 carries, and why in words."""

    code: str
    why: str


class Effect(StrEnum):
    """What a legal event does when the state stays."""

    KEEP = "keep"  # history only
    CONFLICT = "conflict"  # history, and the delivery is flagged for a person


KEEP = Effect.KEEP
CONFLICT = Effect.CONFLICT
Outcome = S | Effect | Refuse

IN_FLIGHT_REFUSAL = Refuse("delivery_in_flight", "a send is in progress; its outcome decides")
ALREADY_SENT = Refuse("already_sent", "the receiver has it; resend instead")

E = Event
WAITING = (S.PENDING, S.WAITING_RETRY, S.DEFERRED)
NOT_SENT = (*WAITING, S.BLOCKED, S.DEAD, S.CANCELLED)
ANSWERED = (S.ACKNOWLEDGED, S.REJECTED)

#: the whole machine; read by state, then event
TABLE: dict[tuple[S, Event], Outcome] = {
    # the dispatcher
    **{(s, E.CLAIMED): S.IN_FLIGHT for s in (*WAITING, S.IN_FLIGHT)},
    **{(S.IN_FLIGHT, e): S.WAITING_RETRY for e in (E.TRANSIENT_FAILURE,)},
    **{(S.IN_FLIGHT, e): S.DEAD for e in (E.RETRIES_EXHAUSTED, E.PERMANENT_FAILURE)},
    (S.IN_FLIGHT, E.MESSAGE_FAULT): S.DEAD,
    **{(s, E.OUTAGE_DEFERRED): S.DEFERRED for s in (*WAITING, S.IN_FLIGHT)},
    (S.IN_FLIGHT, E.RELEASED): S.PENDING,  # the attempt never finished: nothing spent
    # a send that happened is always recorded, whatever happened meanwhile
    **{(s, E.SENT): S.DELIVERED for s in (*NOT_SENT, S.IN_FLIGHT)},
    **{(s, E.SENT): KEEP for s in (S.DELIVERED, *ANSWERED)},
    # ordering keys
    **{(s, E.PREDECESSOR_DEAD): S.BLOCKED for s in WAITING},
    (S.BLOCKED, E.PREDECESSOR_RELEASED): S.PENDING,
    # acknowledgements only move forward
    (S.DELIVERED, E.ACK_ACCEPTED): S.ACKNOWLEDGED,
    (S.DELIVERED, E.ACK_REJECTED): S.REJECTED,
    (S.DELIVERED, E.ACK_RESUBMIT): S.WAITING_RETRY,
    (S.DELIVERED, E.ACK_OVERDUE): KEEP,
    (S.ACKNOWLEDGED, E.ACK_ACCEPTED): KEEP,
    (S.ACKNOWLEDGED, E.ACK_REJECTED): CONFLICT,
    (S.ACKNOWLEDGED, E.ACK_RESUBMIT): CONFLICT,
    (S.REJECTED, E.ACK_ACCEPTED): CONFLICT,
    (S.REJECTED, E.ACK_REJECTED): KEEP,
    (S.REJECTED, E.ACK_RESUBMIT): KEEP,
    # operators
    **{(s, E.OPERATOR_RETRY): S.PENDING for s in (S.DEAD, S.BLOCKED)},
    **{(s, E.OPERATOR_CANCEL): S.CANCELLED for s in (*WAITING, S.BLOCKED, S.DEAD)},
    (S.IN_FLIGHT, E.OPERATOR_CANCEL): IN_FLIGHT_REFUSAL,
    (S.IN_FLIGHT, E.OPERATOR_RETRY): IN_FLIGHT_REFUSAL,
    (S.IN_FLIGHT, E.OPERATOR_RESEND): IN_FLIGHT_REFUSAL,
    **{(s, E.OPERATOR_CANCEL): ALREADY_SENT for s in (S.DELIVERED, *ANSWERED)},
    **{(s, E.OPERATOR_RESEND): S.PENDING for s in (S.DELIVERED, *ANSWERED)},
    (S.DELIVERED, E.OPERATOR_CLOSE): KEEP,
    **{(s, E.OPERATOR_CLOSE): KEEP for s in ANSWERED},  # resolves a flagged conflict
}

#: acks correlated to a delivery in a state not listed above change nothing (history)
_ACK_EVENTS = (E.ACK_ACCEPTED, E.ACK_REJECTED, E.ACK_RESUBMIT)
for _s in S:
    for _e in _ACK_EVENTS:
        TABLE.setdefault((_s, _e), KEEP)


def step(state: S, event: Event) -> Outcome:
    """The outcome of ``event`` for a delivery in ``state``."""
    return TABLE.get((state, event), Refuse("illegal", f"{event} is not possible in {state}"))


def moves(state: S, event: Event) -> bool:
    """Whether ``event`` moves a delivery out of (or back into) ``state``."""
    return isinstance(step(state, event), S)


def sources(event: Event, *, to: S | None = None) -> tuple[S, ...]:
    """The states from which ``event`` moves a delivery (to ``to``, when given)."""
    return tuple(s for s in S if isinstance(o := step(s, event), S) and (to is None or o is to))


def sql_in(states: Iterable[S]) -> str:
    """``('a','b')`` for a SQL ``IN``: the state sets the stores filter on."""
    return "(" + ",".join(f"'{s.value}'" for s in states) + ")"


def refusal(states: Iterable[S], event: Event) -> Refuse | None:
    """For an operator action on a filing: the first refusal that must stop it whole
    (a send in progress), or None. Other refusals just leave that delivery alone."""
    for s in states:
        outcome = step(s, event)
        if outcome == IN_FLIGHT_REFUSAL:
            return outcome
    return None


def mermaid() -> str:
    """The state diagram (Mermaid), one arrow per (state, next state) with its events.

    A late ``sent`` (a send recorded after its lease was lost) is legal from every
    not-yet-sent state; it is drawn as one note rather than six arrows."""
    arrows: dict[tuple[S, S], list[str]] = {}
    late: list[str] = []
    for (state, event), outcome in TABLE.items():
        if not isinstance(outcome, S) or outcome is state:
            continue
        if event is E.SENT and state is not S.IN_FLIGHT:
            late.append(state.value)
            continue
        arrows.setdefault((state, outcome), []).append(event.value)
    lines = ["stateDiagram-v2", "    [*] --> pending: accepted", "    [*] --> blocked: accepted"]
    for (a, b), events in sorted(arrows.items()):
        lines.append(f"    {a.value} --> {b.value}: {', '.join(sorted(events))}")
    lines.append(
        "    note right of delivered: also on a late sent (lease lost, the send happened) "
        f"from {', '.join(sorted(late))}"
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover - prints the README's diagram
    print(mermaid(), end="")
