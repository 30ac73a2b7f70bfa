"""Issue 22 config: a token's ``filer_codes``/``environments`` are validated, naming the key."""

from __future__ import annotations

import pytest

from gateway import config, errors
from gateway.api import auth

SHA = "0" * 64


def _auth(**token: object) -> dict[str, object]:
    return {"auth": {"mode": "token", "tokens": {"t": {"sha256": SHA, **token}}}}


@pytest.mark.parametrize(
    ("token", "key"),
    [
        ({"filer_codes": []}, "auth.tokens.t.filer_codes"),
        ({"filer_codes": [""]}, "auth.tokens.t.filer_codes[0]"),
        ({"filer_codes": [" X1"]}, "auth.tokens.t.filer_codes[0]"),
        ({"filer_codes": [7]}, "auth.tokens.t.filer_codes[0]"),
        ({"environments": []}, "auth.tokens.t.environments"),
        ({"environments": ["staging"]}, "auth.tokens.t.environments[0]"),
    ],
)
def test_a_bad_filer_scope_is_refused_naming_the_key(token, key):
    """An empty list, an empty or padded code, an unknown environment: ConfigError, key first."""
    with pytest.raises(errors.ConfigError) as info:
        config.parse_config(_auth(**token), {})
    assert str(info.value).startswith(key), str(info.value)


def test_a_token_without_filer_codes_sees_every_filer():
    """Absent keys keep today's meaning: the principal is not scoped."""
    cfg = config.parse_config(_auth(), {})
    assert cfg.auth.tokens["t"].filer_codes is None
    principal = auth.Principal("t", frozenset({"read"}))
    assert not principal.scoped and principal.sees("ANY", "production")


def test_a_scoped_principal_sees_only_its_filers_and_environments():
    """Both sets must hold; a submit outside them is 403 naming the field."""
    p = auth.Principal("t", frozenset({"submit"}), frozenset({"A1"}), frozenset({"cert"}))
    assert p.sees("A1", "cert")
    assert not p.sees("B2", "cert") and not p.sees("A1", "production")
    with pytest.raises(errors.Forbidden) as info:
        p.may_submit("B2", "cert")
    assert info.value.details["loc"] == "filer_code"
    with pytest.raises(errors.Forbidden) as info:
        p.may_submit("A1", "production")
    assert info.value.details["loc"] == "environment"


@pytest.mark.parametrize(
    ("quotas", "key"),
    [
        ({"default": {"intake_per_second": 0}}, "quotas.default.intake_per_second"),
        ({"default": {"burst": 5}}, "quotas.default"),
        ({"filers": {"X": {"max_pending": 0}}}, "quotas.filers.X.max_pending"),
        ({"filers": {"X": {"rate": 1}}}, "quotas.filers.X.rate"),
        ({"tokens": {"t": {"max_pending": 3}}}, "quotas.tokens.t.max_pending"),
        ({"tokens": {"nobody": {"intake_per_second": 1}}}, "config"),
    ],
)
def test_a_bad_quota_is_refused_naming_the_key(quotas, key):
    """A zero rate, a burst without a rate, a per-token max_pending (pending is counted per
    filer code), an unknown token: ConfigError naming the key."""
    with pytest.raises(errors.ConfigError) as info:
        config.parse_config({**_auth(), "quotas": quotas}, {})
    assert str(info.value).startswith(key), str(info.value)
    if key == "config":
        assert "quotas.tokens.nobody" in str(info.value)


def test_no_quota_configured_means_intake_skips_the_checks():
    """`active` is False without limits: the hot path does not enter Quotas.admit."""
    assert not config.parse_config({}, {}).quotas.active
    cfg = config.parse_config({"quotas": {"filers": {"X": {"max_pending": 5}}}}, {})
    assert cfg.quotas.active and cfg.quotas.for_filer("Y").max_pending is None
