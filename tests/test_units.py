"""Pure parts: durations, retry math, routing, status derivation, normalization, ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway import config, errors, ids, models
from gateway.durations import parse_duration
from gateway.rules import normalize, retry, router

NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2s", 2),
        ("10m", 600),
        ("72h", 259200),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("3d", 259200),
        (15, 15),
        ("1.5s", 1.5),
    ],
)
def test_durations_parse_to_seconds(text, seconds):
    """Config durations like '10m' and '1h30m' become seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "10x", "m10", "-3s", True, None, "10 parsecs"])
def test_bad_durations_are_refused(bad):
    """A value that is not a duration is a clear error, not zero."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def _policy(**kw):
    base = {
        "max_attempts": 5,
        "initial_delay": "1s",
        "max_delay": "10s",
        "max_age": "1h",
        "jitter": "0s",
    }
    return retry.RetryPolicy(config.RetrySection.model_validate({**base, **kw}))


def test_retry_backoff_doubles_up_to_the_cap():
    """Without jitter the waits are 1, 2, 4, 8, then capped at max_delay."""
    p = _policy(max_attempts=10)
    assert [p.delay_for(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_retry_jitter_stays_within_its_bound():
    """Jitter adds at most `jitter` seconds to the exponential wait."""
    p = _policy(jitter="500ms")
    delays = [p.delay_for(2) for _ in range(200)]
    assert all(2 <= d <= 2.5 for d in delays)
    assert len(set(delays)) > 1


def test_retry_gives_up_at_the_attempt_cap():
    """After max_attempts attempts the policy says dead (None)."""
    p = _policy(max_attempts=3)
    assert p.decide(attempts=2, now=NOW, first_seen=NOW) is not None
    assert p.decide(attempts=3, now=NOW, first_seen=NOW) is None


def test_retry_gives_up_past_max_age():
    """A retry that would land past max_age is not scheduled."""
    p = _policy(max_age="30s")
    assert p.decide(attempts=1, now=NOW + timedelta(seconds=29.5), first_seen=NOW) is None


def test_retry_after_from_the_receiver_wins():
    """A receiver's Retry-After sets the wait instead of the backoff."""
    d = _policy().decide(attempts=1, now=NOW, first_seen=NOW, retry_after=7)
    assert d is not None and d.at == NOW + timedelta(seconds=7)


def _filing(filing_type="isf", environment="cert", filer="XYZ"):
    event = models.FilingEvent(
        filing_type=filing_type,
        environment=environment,
        reference="R1",
        filer_code=filer,
        payload={"a": 1},
    )
    return normalize.normalize(event, filing_id="fil_1", received_at=NOW)


def test_router_fans_out_and_matches_globs():
    """manifest.* matches every manifest; a filing goes to each matching adapter once."""
    routes = [
        config.RouteConfig(filing_types=["manifest.*"], adapters=["a", "b"]),
        config.RouteConfig(filing_types=["*"], environments=["production"], adapters=["b", "c"]),
    ]
    assert router.route(_filing("manifest.ocean", "production"), routes) == ["a", "b", "c"]
    assert router.route(_filing("manifest.air", "cert"), routes) == ["a", "b"]


def test_router_filters_on_filer_code():
    """A route restricted to filer codes ignores other filers."""
    routes = [config.RouteConfig(filer_codes=["ABC"], adapters=["a"])]
    with pytest.raises(errors.Unroutable, match="no route"):
        router.route(_filing(filer="XYZ"), routes)
    assert router.route(_filing(filer="abc"), routes) == ["a"]


def test_route_glob_matching_no_filing_type_is_a_config_error():
    """A typo such as 'manifest.sea' would silently route nothing; it is refused."""
    with pytest.raises(ValueError, match="matches no filing type"):
        config.RouteConfig(filing_types=["manifest.sea"], adapters=["a"])


@pytest.mark.parametrize(
    ("states", "status"),
    [
        (["pending"], "pending"),
        (["delivered", "pending"], "in_progress"),
        (["delivered", "delivered"], "delivered"),
        (["delivered", "dead"], "dead"),
        (["blocked", "pending"], "blocked"),
        (["cancelled", "delivered"], "delivered"),
        (["cancelled"], "cancelled"),
        (["waiting_retry", "delivered"], "retrying"),
        (["acknowledged"], "acknowledged"),
    ],
)
def test_filing_status_is_derived_from_deliveries(states, status):
    """The filing's status is the most urgent of its deliveries' states."""
    assert models.derive_status([models.DeliveryState(s) for s in states]).value == status


def test_normalize_defaults_ordering_key_to_reference_and_hashes_the_body():
    """ordering_key falls back to reference; equal bodies hash equal, keys aside."""
    a = models.FilingEvent(
        filing_type="isf",
        environment="cert",
        reference=" R1 ",
        filer_code="xyz",
        payload={"x": 1},
        idempotency_key="k1",
    )
    b = a.model_copy(update={"idempotency_key": "k2"})
    f = normalize.normalize(a, filing_id="fil_1", received_at=NOW)
    assert f.ordering_key == "R1" and f.filer_code == "XYZ"
    assert a.body_hash() == b.body_hash()
    assert a.body_hash() != a.model_copy(update={"payload": {"x": 2}}).body_hash()


def test_idempotency_header_and_body_must_agree():
    """A header key that differs from the body key is refused, naming the field."""
    e = models.FilingEvent(
        filing_type="isf",
        environment="cert",
        reference="R",
        filer_code="X",
        payload={},
        idempotency_key="a",
    )
    with pytest.raises(errors.InvalidInput) as info:
        normalize.normalize(e, filing_id="f", received_at=NOW, idempotency_header="b")
    assert info.value.details[0]["loc"] == "idempotency_key"


def test_text_payload_defaults_to_text_plain_and_refuses_a_json_type():
    """A text payload without content_type is text/plain; one labelled JSON is refused."""
    kw = {"filing_type": "isf", "environment": "cert", "reference": "R", "filer_code": "X"}
    e = models.FilingEvent(**kw, payload="ISA*00*...")
    assert normalize.normalize(e, filing_id="f", received_at=NOW).content_type == "text/plain"
    with pytest.raises(ValueError, match="content_type"):
        models.FilingEvent(**kw, payload="ISA*00*...", content_type="application/json")
    with pytest.raises(ValueError, match="at least 1"):
        models.FilingEvent(**kw, payload="")


def test_ids_sort_by_creation():
    """Gateway ids are sortable: later ids compare greater."""
    made = [ids.new_id("fil") for _ in range(1000)]
    assert made == sorted(made) and len(set(made)) == 1000


def _crockford_by_hand(value: int, length: int) -> str:
    """The ULID spec's digit-by-digit Crockford base32, the reference for ids._encode."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    digits = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        digits.append(alphabet[rem])
    return "".join(reversed(digits))


@pytest.mark.parametrize("length", [1, 8, 9, 10, 16, 26])
def test_id_encoding_matches_digit_by_digit_base32(length: int) -> None:
    """ids._encode goes through base64.b32encode; it must spell what the ULID spec spells."""
    import random

    rng = random.Random(length)
    values = [0, 32**length - 1] + [rng.getrandbits(5 * length) for _ in range(500)]
    for v in values:
        assert ids._encode(v, length) == _crockford_by_hand(v, length)
