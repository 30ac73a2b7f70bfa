"""The redactor's shortcuts for plain strings inside dicts (every audit row and log line
goes through them) mask exactly what the patterns alone would."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from test_audit_redaction import _PIECES, _text_by_every_pattern

from gateway.audit import redact


@settings(max_examples=600)
@given(st.lists(_PIECES | st.text(max_size=6), max_size=8).map("".join))
def test_strings_in_dicts_are_masked_as_every_pattern_would(value: str) -> None:
    """A string value of a dict (the walk's inline shortcut) and a string alone agree."""
    out = redact.Redactor().value({"note": value, "nested": {"note": value}})
    expected = _text_by_every_pattern(value)
    assert out == {"note": expected, "nested": {"note": expected}}
