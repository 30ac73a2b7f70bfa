"""The lifecycle table (gateway/rules/lifecycle.py): the rules a filer relies on, read off the
table itself, the README's diagram generated from it, and the ack decision built on it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway import config, models, values
from gateway.rules import acks as ackrules
from gateway.rules import lifecycle
from gateway.store import fragments
from tests.conftest import base_config

S = models.DeliveryState
E = lifecycle.Event
README = Path(__file__).resolve().parent.parent / "README.md"
T0 = datetime(2026, 1, 7, 17, 0, tzinfo=UTC)


def test_a_send_that_happened_is_recorded_from_every_state() -> None:
    """``sent`` is legal everywhere: not-yet-sent states move to delivered, sent ones keep."""
    for state in S:
        outcome = lifecycle.step(state, E.SENT)
        if state in (S.DELIVERED, S.ACKNOWLEDGED, S.REJECTED):
            assert outcome is lifecycle.KEEP, state
        else:
            assert outcome is S.DELIVERED, state


def test_no_operator_action_moves_an_in_flight_delivery() -> None:
    """Cancel, retry and resend of an in-flight delivery are refused: its send decides."""
    for event in (E.OPERATOR_CANCEL, E.OPERATOR_RETRY, E.OPERATOR_RESEND):
        assert lifecycle.step(S.IN_FLIGHT, event) == lifecycle.IN_FLIGHT_REFUSAL
    assert lifecycle.refusal([S.PENDING, S.IN_FLIGHT], E.OPERATOR_CANCEL) is not None
    assert lifecycle.refusal([S.PENDING, S.DEAD], E.OPERATOR_CANCEL) is None


def test_a_positive_ack_is_never_undone_by_the_gateway() -> None:
    """From acknowledged, no event but an operator's resend leaves the state."""
    for event in E:
        outcome = lifecycle.step(S.ACKNOWLEDGED, event)
        if isinstance(outcome, S) and outcome is not S.ACKNOWLEDGED:
            assert event is E.OPERATOR_RESEND, event
    assert lifecycle.step(S.ACKNOWLEDGED, E.ACK_REJECTED) is lifecycle.CONFLICT
    assert lifecycle.step(S.ACKNOWLEDGED, E.ACK_RESUBMIT) is lifecycle.CONFLICT
    assert lifecycle.step(S.REJECTED, E.ACK_ACCEPTED) is lifecycle.CONFLICT


def test_only_a_delivered_delivery_is_resubmitted_by_an_ack() -> None:
    """An automatic resend (ack_resubmit → waiting_retry) starts from delivered only."""
    assert lifecycle.sources(E.ACK_RESUBMIT) == (S.DELIVERED,)


def test_store_state_sets_are_the_tables() -> None:
    """The SQL state sets the stores filter on are read off the table (or agree with it)."""
    claimable = set(lifecycle.sources(E.CLAIMED))
    assert claimable == set(re.findall(r"'(\w+)'", fragments.COMMON["claimable"]))
    assert set(values.BULK_FROM["cancel"]) == {
        s.value for s in lifecycle.sources(E.OPERATOR_CANCEL)
    }
    assert "in_flight" not in values.BULK_FROM["cancel"]
    assert set(re.findall(r"'(\w+)'", fragments.COMMON["resend_from"])) == {
        "delivered",
        "acknowledged",
        "rejected",
    }


def test_readme_shows_the_generated_diagram() -> None:
    """The README's state diagram is exactly ``python -m gateway.rules.lifecycle``'s output."""
    text = README.read_text()
    match = re.search(r"```mermaid\n(stateDiagram-v2\n.*?)```", text, re.S)
    assert match, "README has no mermaid stateDiagram-v2 block"
    assert match.group(1) == lifecycle.mermaid()


# --- the ack decision ---------------------------------------------------------------------


@pytest.fixture
def rules(tmp_path: Path) -> ackrules.Rules:
    data = base_config(tmp_path, acks={"resubmit_codes": ["E90"]})
    return ackrules.Rules(config.parse_config(data, {}))


def target(state: S, attempts: int = 1, answers: int | None = None) -> ackrules.AckTarget:
    return ackrules.AckTarget(
        delivery_id="dlv_1",
        filing_id="fil_1",
        adapter="outbox",
        state=state,
        attempts=attempts,
        filing_received_at=T0,
        answers_attempt=answers,
    )


def ack(outcome: str, *codes: str, message: str = "") -> models.Ack:
    return models.Ack(delivery_id="dlv_1", outcome=outcome, codes=list(codes), message=message)


def test_resubmit_ack_after_an_accepted_one_is_a_conflict(rules: ackrules.Rules) -> None:
    """E90 on an acknowledged delivery: conflict, no state, no resend."""
    decision = rules.decide(ack("rejected", "E90", message="x"), target(S.ACKNOWLEDGED), T0)
    assert (decision.effect, decision.state) == ("conflict", None)


def test_resubmit_ack_resends_a_delivered_delivery_within_budget(rules: ackrules.Rules) -> None:
    """E90 on a delivered delivery: resend at the policy's time; past the budget: rejected."""
    decision = rules.decide(ack("rejected", "E90"), target(S.DELIVERED), T0)
    assert (decision.effect, decision.state) == ("resend_scheduled", S.WAITING_RETRY)
    spent = rules.decide(ack("rejected", "E90"), target(S.DELIVERED, attempts=5), T0)
    assert (spent.effect, spent.state) == ("rejected", S.REJECTED)


def test_a_late_negative_ack_for_an_earlier_attempt_is_history(rules: ackrules.Rules) -> None:
    """A rejection answering attempt 1 when attempt 2 went out changes nothing."""
    late = rules.decide(ack("rejected", "E90"), target(S.DELIVERED, attempts=2, answers=1), T0)
    assert (late.effect, late.state) == ("history", None)
    current = rules.decide(ack("rejected", "E90"), target(S.DELIVERED, attempts=2, answers=2), T0)
    assert current.effect == "resend_scheduled"
    accepted = rules.decide(ack("accepted"), target(S.DELIVERED, attempts=2, answers=1), T0)
    assert accepted.state is S.ACKNOWLEDGED


def test_an_accepted_ack_after_a_rejection_is_a_conflict(rules: ackrules.Rules) -> None:
    """Positive after negative: conflict, the rejection stands."""
    decision = rules.decide(ack("accepted"), target(S.REJECTED), T0 + timedelta(seconds=1))
    assert (decision.effect, decision.state) == ("conflict", None)
