"""``models.json_bytes``: the json module's compact spelling, byte for byte, whichever
library writes it (body hashes and sent bodies must never change spelling)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import models


def _json_module(value: Any, *, sort_keys: bool) -> bytes:
    return json.dumps(
        value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False
    ).encode()


_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
_values = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(), inner, max_size=5)
        | st.dictionaries(st.integers(), inner, max_size=3)
    ),
    max_leaves=30,
)


@settings(max_examples=400)
@given(_values, st.booleans())
def test_json_bytes_spells_as_the_json_module(value: Any, sort_keys: bool) -> None:
    """Floats, integers past 64 bits, non-string keys, tuples and every string come out as
    ``json.dumps(..., separators=(",", ":"), ensure_ascii=False)`` writes them."""
    assert models.json_bytes(value, sort_keys=sort_keys) == _json_module(value, sort_keys=sort_keys)


def test_json_bytes_spells_floats_the_json_way() -> None:
    """A float anywhere keeps the json module's spelling (orjson writes ``1e16``, NaN
    as ``null``)."""
    value = {"b": [1, {"x": 1e16}], "a": float("nan"), "c": 1e-7}
    assert models.json_bytes(value, sort_keys=True) == (b'{"a":NaN,"b":[1,{"x":1e+16}],"c":1e-07}')


def test_body_hash_is_stable() -> None:
    """A filing event's body hash is the one every earlier version stored."""
    event = models.FilingEvent.model_validate(
        {
            "filing_type": "isf",
            "environment": "cert",
            "reference": "ISF-1",
            "filer_code": "XYZ",
            "payload": {"é": "ü\u2028", "n": 2**64, "f": 0.1, "list": [True, None]},
            "metadata": {"k": "v"},
        }
    )
    data = event.model_dump(mode="json", exclude={"idempotency_key"})
    assert event.body_hash() == hashlib.sha256(_json_module(data, sort_keys=True)).hexdigest()
