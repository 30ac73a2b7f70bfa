"""X12 envelopes and TA1/997/999 parsing (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.encoding import x12

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


# --- real files: every interchange on its own terms, envelopes checked --------------------

import io  # noqa: E402
from pathlib import Path  # noqa: E402

import pyx12.x12file  # noqa: E402

from gateway.encoding import x12read  # noqa: E402
from gateway.rules import acks as ackrules  # noqa: E402

DATA = Path(__file__).parent / "data" / "x12"
REAL_FILES = sorted(p.name for p in DATA.iterdir() if p.name != "SOURCES.md")
#: the envelope faults pyx12's X12Reader reports, as (level, code) - the X12 codes we use too
_PYX12_ENVELOPE = {"isa": "interchange", "gs": "group", "st": "set"}
_ENVELOPE_CODES = {"001", "021", "023", "3", "4", "5", "2"}


def real(name: str) -> str:
    return (DATA / name).read_bytes().decode("utf-8-sig")


def pyx12_envelope_errors(interchange: x12read.Interchange) -> set[tuple[str, str]]:
    """What pyx12 (an independent parser, from PyPI) finds wrong with one interchange."""
    text = interchange.text
    if not text.endswith(interchange.delimiters.segment):
        text += interchange.delimiters.segment
    reader = pyx12.x12file.X12Reader(io.StringIO(text))
    for _ in reader:
        pass
    reader.cleanup()
    return {
        (_PYX12_ENVELOPE[level], code)
        for level, code, *_ in reader.err_list
        if level in _PYX12_ENVELOPE and code in _ENVELOPE_CODES
    }


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_ack_files_parse_and_pyx12_agrees_on_their_envelopes(name):
    """Each public 997/999/TA1 file yields answers; pyx12 finds the same envelope faults."""
    document = x12read.read(real(name))
    ours = {(e.level, e.code) for e in document.errors}
    theirs: set[tuple[str, str]] = set()
    for interchange in document.interchanges:
        theirs |= pyx12_envelope_errors(interchange)
    assert ours == theirs
    acks = ackrules.from_x12(real(name), source="test", now=NOW)
    assert acks and all(a.kind in ("TA1", "997", "999") for a in acks)


def test_iea_control_mismatch_in_a_real_file_is_reported_at_its_segment():
    """imsweb's 999: IEA02 000000001 against ISA13 000000286 → code 001 at segment 10."""
    [fault] = x12read.read(real("imsweb_x12_999_accepted.txt")).errors
    assert (fault.position, fault.segment, fault.level, fault.code) == (
        10,
        "IEA",
        "interchange",
        "001",
    )
    assert "000000001" in fault.message and "000000286" in fault.message


def test_se_segment_count_of_580_against_8_is_reported_and_the_answer_still_read():
    """SE01 580 on an 8-segment set → code 4 at the SE (segment 10); the AK5 R still counts."""
    name = "derived_se_count_580.997"
    [fault] = x12read.read(real(name)).errors
    assert (fault.position, fault.segment, fault.code) == (10, "SE", "4")
    reading = ackrules.read_x12(real(name), source="test", now=NOW)
    assert [(a.group_control, a.set_control, a.outcome) for a in reading.acks] == [
        (17, "11280001", "rejected")
    ]
    assert reading.problems == [fault]


def test_bom_pipe_separators_and_crlf_terminators_read_like_the_original():
    """A BOM, `|` elements and CR LF as terminator: the same answers as the `*`/`~` file."""
    plain = ackrules.from_x12(real("pyx12_simple1.997"), source="t", now=NOW)
    raw = (DATA / "derived_pipe_newline_bom.997").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfISA|")
    crlf = ackrules.parse_document("text/plain", raw, source="t", now=NOW)
    assert [(a.kind, a.outcome, a.group_control, a.set_control, a.codes) for a in crlf] == [
        (a.kind, a.outcome, a.group_control, a.set_control, a.codes) for a in plain
    ]
    assert x12read.read(raw.decode("utf-8-sig")).errors == []


def _cbp_997(group: int, *, icn: str = "000000900", iea: str | None = None) -> str:
    """CBP's answer, written with `|` and newline terminators (its own ISA)."""
    return (
        "ISA|00|          |00|          |ZZ|CBPACE         |ZZ|MAEU           |261127|0931|"
        f"^|00501|{icn}|0|T|:\n"
        f"GS|FA|CBPACE|MAEU|20261127|0931|900|X|005010\nST|997|0001\nAK1|SO|{group}\n"
        "AK2|309|0001\nAK5|A\nAK9|A|1|1|1\nSE|6|0001\nGE|1|900\n"
        f"IEA|1|{iea or icn}\n"
    )


def test_two_interchanges_in_one_file_each_keep_their_own_parties_usage_and_delimiters():
    """A VAN batch: another partner's real 997 (`*`,`~`, P) before CBP's (`|`, newline, T)."""
    doc = real("pyx12_834_lui_id.997") + _cbp_997(2)
    document = x12read.read(doc)
    assert [i.delimiters.element for i in document.interchanges] == ["*", "|"]
    assert [i.first_position for i in document.interchanges] == [1, 11]
    assert document.errors == []
    acks = ackrules.from_x12(doc, source="van", now=NOW)
    assert [(a.x12_receiver, a.x12_sender, a.usage, a.group_control) for a in acks] == [
        ("ZZ:00GR", "ZZ:D00111", "P", 13360001),
        ("ZZ:CBPACE", "ZZ:MAEU", "T", 2),
    ]
    assert acks[1].raw is not None and acks[1].raw.startswith("ISA|")


def test_missing_trailers_are_reported_and_the_next_interchange_still_read():
    """No SE/GE/IEA before the next ISA → codes 2, 3, 023 at its place; CBP's answer read."""
    first = real("pyx12_834_lui_id.997").split("SE*6*0001~")[0]  # cut after AK9
    document = x12read.read(first + _cbp_997(2))
    assert [(e.position, e.level, e.code) for e in document.errors] == [
        (8, "set", "2"),
        (8, "group", "3"),
        (8, "interchange", "023"),
    ]  # segment 8 is where the trailers should have been: the next ISA
    assert [i.first_position for i in document.interchanges] == [1, 8]
    acks = ackrules.from_x12(first + _cbp_997(2), source="t", now=NOW)
    assert (acks[-1].x12_receiver, acks[-1].group_control) == ("ZZ:CBPACE", 2)


def test_group_count_and_control_faults_carry_x12_codes():
    """GE02 ≠ GS06 → 4, GE01 ≠ sets → 5, IEA01 ≠ groups → 021, each at its own segment."""
    doc = _cbp_997(2).replace("GE|1|900", "GE|3|901").replace("IEA|1|", "IEA|4|")
    faults = [(e.position, e.segment, e.code) for e in x12read.read(doc).errors]
    assert faults == [(9, "GE", "4"), (9, "GE", "5"), (10, "IEA", "021")]
    document = x12read.read(doc)
    assert pyx12_envelope_errors(document.interchanges[0]) == {
        ("group", "4"),
        ("group", "5"),
        ("interchange", "021"),
    }


def test_a_file_with_no_readable_answer_lists_every_fault():
    """Nothing usable → X12Error (422) whose details name each fault and its position."""
    broken = _cbp_997(2).replace("AK5|A\n", "AK5|Q\n").replace("IEA|1|000000900", "IEA|1|9")
    with pytest.raises(x12.X12Error) as caught:
        ackrules.from_x12(broken, source="t", now=NOW)
    locs = [d["loc"] for d in caught.value.details]
    assert "segment 10 (IEA)" in locs and "segment 1 (ISA)" in locs


def test_an_answer_out_of_range_is_a_listed_problem_and_the_rest_still_read():
    """AK1 group 0 (no control number can be 0) in one interchange: listed, not a crash."""
    bad = _cbp_997(0).replace("000000900", "000000901")
    reading = ackrules.read_x12(bad + _cbp_997(2), source="t", now=NOW)
    assert [a.group_control for a in reading.acks] == [2]
    [problem] = reading.problems
    assert (problem.position, problem.code) == (1, "invalid_ack")
    assert "group_control" in problem.message


_ISA_STAR = _isa()
_ISA_PIPE = _cbp_997(1).split("\n")[0] + "\n"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.just(_ISA_STAR),
            st.just(_ISA_PIPE),
            st.text(alphabet="ISAGEST*|~\n\r>:0123456789AKR59 \ufeff", max_size=60),
        ),
        max_size=6,
    )
)
def test_file_reader_raises_only_its_own_error(parts):
    """Concatenated ISAs (two delimiter sets) and noise: read, or X12Error — nothing else."""
    doc = "".join(parts)
    try:
        document = x12read.read(doc)
    except x12.X12Error:
        return
    assert all(e.position >= 1 for e in document.errors)
    try:
        ackrules.read_x12(doc, source="fuzz", now=NOW)
    except x12.X12Error:
        pass
