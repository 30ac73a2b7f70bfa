"""X12 envelopes and TA1/997/999 parsing (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway import x12

NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
SET_309 = "ST*309*0001~M10*MAEU*O*US*MAERSK KENTUCKY*001~P4*4601*20261203~SE*4*0001~"


def wrap(sets_text: str, icn: int = 101, gcn: int = 7, usage: str = "T") -> str:
    return x12.envelope(
        x12.transaction_sets(sets_text),
        sender=x12.EnvelopeParty("ZZ", "MAEU"),
        receiver=x12.EnvelopeParty("ZZ", "CBPACE"),
        interchange_control=icn,
        group_control=gcn,
        usage=usage,
        functional_id="SO",
        now=NOW,
    )


def test_envelope_counts_and_control_numbers_match():
    """ISA is 106 chars; SE/GE/IEA counts and control numbers agree."""
    doc = wrap(SET_309 + SET_309.replace("0001", "0002"), icn=123456789, gcn=42, usage="P")
    _, segs = x12.split_segments(doc)
    assert len(doc.split("~")[0]) + 1 == 106
    isa, gs = segs[0], segs[1]
    assert isa[13] == "123456789" and isa[15] == "P" and isa[16] == ">"
    assert gs[6] == "42"
    ses = [s for s in segs if s[0] == "SE"]
    sts = [s for s in segs if s[0] == "ST"]
    assert [s[2] for s in sts] == ["0001", "0002"] == [s[2] for s in ses]
    assert all(int(se[1]) == 4 for se in ses)
    assert segs[-2] == ["GE", "2", "42"]
    assert segs[-1] == ["IEA", "1", "123456789"]
    assert len(x12.transaction_sets(doc)) == 2  # our own output parses back


def test_se_count_mismatch_is_refused():
    """A transaction set whose SE01 is wrong is invalid input, not silently fixed."""
    with pytest.raises(x12.X12Error, match="SE01"):
        x12.transaction_sets("ST*309*0001~M10*X~SE*9*0001~")
    with pytest.raises(x12.X12Error, match="no ST"):
        x12.transaction_sets("HELLO~")


def test_control_numbers_wrap_after_nine_nines():
    """999999999 is followed by 1, never 0 and never 10 digits."""
    assert x12.next_control(999_999_999) == 1
    assert x12.next_control(41) == 42
    with pytest.raises(x12.X12Error):
        wrap(SET_309, icn=1_000_000_000)


def _isa(icn: str = "000000101") -> str:
    return (
        f"ISA*00*          *00*          *ZZ*CBPACE         *ZZ*MAEU           *261127*"
        f"0931*U*00401*{icn}*0*T*>~"
    )


def test_997_with_ak5_r_is_a_rejection_of_that_set():
    """AK5 R → rejected for the set control number in AK2, with the error codes."""
    doc = (
        _isa() + "GS*FA*CBPACE*MAEU*20261127*0931*9*X*004010~ST*997*0001~AK1*SO*7~"
        "AK2*309*0001~AK3*M10*2**8~AK4*3*66*7~AK5*R*5~AK2*309*0002~AK5*A~"
        "AK9*P*2*2*1~SE*9*0001~GE*1*9~IEA*1*000000101~"
    )
    acks = x12.parse_acks(doc)
    assert [(a.kind, a.group_control, a.set_control, a.outcome) for a in acks] == [
        ("997", 7, "0001", "rejected"),
        ("997", 7, "0002", "accepted"),
    ]
    assert acks[0].codes == ["AK3:8", "AK4:7", "5"]


def test_999_and_ta1_are_parsed():
    """IK5 in a 999 and a TA1 interchange ack each become an ack."""
    doc999 = (
        _isa() + "GS*FA*CBPACE*MAEU*20261127*0931*9*X*005010X231A1~ST*999*0001~"
        "AK1*SO*7*005010~AK2*309*0001~IK5*E*I5~AK9*E*1*1*1~SE*6*0001~GE*1*9~"
        "IEA*1*000000101~"
    )
    [ack] = x12.parse_acks(doc999)
    assert (ack.kind, ack.outcome, ack.codes) == ("999", "warning", ["I5"])
    ta1 = _isa() + "TA1*000000101*261127*0930*R*022~IEA*0*000000101~"
    [ack] = x12.parse_acks(ta1)
    assert (ack.kind, ack.interchange_control, ack.outcome, ack.codes) == (
        "TA1",
        101,
        "rejected",
        ["022"],
    )


@pytest.mark.parametrize(
    "doc",
    [
        "",
        "GS*FA~",
        "ISA*short~",
        _isa() + "TA1*abc*1*2*A~",
        _isa() + "ST*997*1~AK1*SO*1~AK2*309*1~AK5*Q~",
    ],
)
def test_garbage_acks_raise_our_own_error(doc):
    """Malformed documents raise X12Error (422 over HTTP), nothing else."""
    with pytest.raises(x12.X12Error):
        x12.parse_acks(doc)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ISATAK1259*~>0123456789 EGSTRAX\n", max_size=300))
def test_ack_parser_raises_only_its_own_error(noise):
    """Fuzzed input never escapes as anything but X12Error."""
    for doc in (noise, _isa() + noise):
        try:
            x12.parse_acks(doc)
        except x12.X12Error:
            pass
