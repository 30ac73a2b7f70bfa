"""The redactor remembers, per key name, whether it names a secret; what it masks is
what the rule says: the value of every key whose name, lower-cased with '-' as '_', is
in ``SECRET_KEYS``, however many names it has seen."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit import redact


def _spellings(name: str) -> st.SearchStrategy[str]:
    """``name`` in any mix of cases, each '_' as '_' or '-'."""
    return st.lists(st.booleans(), min_size=2 * len(name), max_size=2 * len(name)).map(
        lambda flips: "".join(
            ("-" if flips[2 * i] else "_") if c == "_" else (c.upper() if flips[2 * i + 1] else c)
            for i, c in enumerate(name)
        )
    )


_KEYS = (
    st.sampled_from(sorted(redact.SECRET_KEYS)).flatmap(_spellings)
    | st.sampled_from(["filing_id", "tokens", "keys", "author", "dsn_name", "note"])
    | st.text(max_size=8)
)
_VALUES = st.sampled_from(
    ["", "short", "a-long-secret-value-0123456789", "Bearer abcdefgh12345678"]
)


def _expected(key: str, value: str) -> str:
    norm = key.lower().replace("-", "_")
    if norm in redact.SECRET_KEYS:
        return str(redact._secret(value, norm))
    return redact.Redactor().text(value)


@settings(max_examples=400)
@given(st.dictionaries(_KEYS, _VALUES, max_size=6))
def test_a_value_is_masked_exactly_when_its_key_names_a_secret(line: dict[str, str]) -> None:
    """Any spelling of a secret key masks its value; every other key's value is only
    searched for sensitive text; a second pass (names remembered) agrees with the first."""
    expected = {key: _expected(key, value) for key, value in line.items()}
    redactor = redact.Redactor()
    assert redactor.value(line) == expected
    assert redactor.value({"nested": line}) == {"nested": expected}


def test_names_past_the_memory_bound_are_still_judged_by_the_rule() -> None:
    """After thousands of distinct key names (the remembered ones are dropped past the
    bound), a secret key is still masked and a plain one is not."""
    redact._secret_names.clear()  # none of the names below seen before
    redactor = redact.Redactor()
    for i in range(10_000):
        redactor.value({f"field_{i}": "x"})
    out = redactor.value({"Api-Key": "a-long-secret-value-0123456789", "field_1": "plain"})
    assert out == {"Api-Key": "*-****-******-*****-******6789", "field_1": "plain"}
