"""Row 10: hypothesis on the X12 and ack parsers and the config loader: nothing escapes but
our own errors (``X12Error``, ``ConfigError``)."""

from __future__ import annotations

import collections
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import config, errors
from gateway.encoding import x12
from tests.conftest import base_config
from tests.reliability import relkit
from tests.reliability.conftest import record_figure

EXAMPLES = relkit.scale("fuzz_examples", 300)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
SEEN: collections.Counter[str] = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def _row10_figure() -> Iterator[None]:
    started = time.monotonic()
    yield
    record_figure(
        "row10",
        f"{SEEN['x12']} X12/ack documents, {SEEN['dict']} config dicts + env overrides, "
        f"{SEEN['toml']} mutated TOML files: {SEEN['ours']} raised our own error, 0 other "
        f"exceptions, {time.monotonic() - started:.0f}s",
    )


ISA = (
    "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       "
    "*250304*1200*^*00501*000000001*0*T*>~"
)
SEGMENT_IDS = [
    "ISA",
    "GS",
    "ST",
    "SE",
    "GE",
    "IEA",
    "TA1",
    "AK1",
    "AK2",
    "AK3",
    "AK4",
    "AK5",
    "AK9",
    "IK3",
    "IK4",
    "IK5",
    "B10",
    "",
]
ELEMENT = st.text(alphabet="0123456789AERWXMP* >^:", max_size=12)
SEGMENT = st.builds(
    lambda tag, els: "*".join([tag, *els]),
    st.sampled_from(SEGMENT_IDS),
    st.lists(ELEMENT, max_size=8),
)
DOCUMENT = st.builds(
    lambda head, segs, sep: head + sep.join(segs) + sep,
    st.sampled_from([ISA, "", ISA[:50], ISA.replace("~", "\n")]),
    st.lists(SEGMENT, max_size=25),
    st.sampled_from(["~", "~\n", "\n", "~\r\n"]),
)


@FUZZ
@given(DOCUMENT)
def test_x12_parsers_raise_only_x12error_on_structured_garbage(doc):
    """Row 10: segment-shaped garbage → parsed or X12Error, never another exception."""
    SEEN["x12"] += 1
    for parse in (x12.parse_acks, x12.split_segments):
        try:
            parse(doc)
        except x12.X12Error:
            SEEN["ours"] += 1
    try:
        d, _ = x12.split_segments(doc)
        x12.transaction_sets(doc, d)
    except x12.X12Error:
        SEEN["ours"] += 1


SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["1s", "0s", "-1s", "10m", "bogus", "127.0.0.1:0"]),
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
SECTIONS = [
    "gateway",
    "auth",
    "retry",
    "adapters",
    "routes",
    "breaker",
    "calendars",
    "audit",
    "deadlines",
    "sources",
    "outbox",
]


@FUZZ
@given(
    st.dictionaries(st.sampled_from(SECTIONS), VALUE, max_size=4),
    st.dictionaries(
        st.sampled_from(["gateway", "retry", "adapters.outbox", "auth", "routes"]).flatmap(
            lambda s: st.builds(
                lambda k: "EDIGW_" + (s + "." + k).upper().replace(".", "__"),
                st.sampled_from(["listen", "lease", "mode", "max_attempts", "type", "x", ""]),
            )
        ),
        st.text(max_size=30) | st.sampled_from(['{"a": 1}', "[1, 2]", "[{}]", "null", "1e999"]),
        max_size=3,
    ),
)
def test_config_loader_raises_only_configerror(tmp_path_factory, changes, environ):
    """Row 10: any mix of sections, values and EDIGW_ overrides → Config or ConfigError."""
    tmp = tmp_path_factory.getbasetemp()
    data = base_config(tmp)
    for name, value in changes.items():
        if isinstance(data.get(name), dict) and isinstance(value, dict):
            data[name] = {**data[name], **value}
        else:
            data[name] = value
    SEEN["dict"] += 1
    try:
        config.parse_config(data, environ)
    except errors.ConfigError:
        SEEN["ours"] += 1


VALID = (Path(__file__).resolve().parents[2] / "config" / "gateway.toml").read_text()


@FUZZ
@given(st.integers(0, len(VALID)), st.integers(0, 40), st.text(max_size=20))
def test_config_file_mutations_raise_only_configerror(tmp_path_factory, at, cut, insert):
    """Row 10: the shipped TOML with a slice cut and text spliced in → Config or ConfigError."""
    text = VALID[:at] + insert + VALID[at + cut :]
    path = tmp_path_factory.getbasetemp() / "fuzzed.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        pass
    SEEN["toml"] += 1
    try:
        config.load_config(path, environ={})
    except errors.ConfigError:
        SEEN["ours"] += 1
