"""AES-GCM sealing: values carry their key id and nonce, bind their record, rotate keys,
and a wrong or missing key is an error naming the key id, never plaintext."""

from __future__ import annotations

import base64
import os

import pytest
from records_helpers import key_line

from gateway.records import crypto, errors


def test_a_sealed_value_opens_with_its_associated_data(keyring):
    sealed = keyring.seal(b"importer 12-345678900", aad=b"payload:fil_1")
    assert b"12-345678900" not in sealed
    assert crypto.sealed_kid(sealed) == "k1"
    assert keyring.open(sealed, aad=b"payload:fil_1") == b"importer 12-345678900"


def test_two_seals_of_one_value_differ(keyring):
    """A fresh nonce each time: equal payloads do not show as equal ciphertext."""
    assert keyring.seal(b"x", aad=b"a") != keyring.seal(b"x", aad=b"a")


def test_a_value_moved_to_another_record_does_not_open(keyring):
    """The associated data binds the record: a payload copied into another row fails."""
    sealed = keyring.seal(b"secret", aad=b"payload:fil_1")
    with pytest.raises(errors.OpenFailed, match="'k1'") as caught:
        keyring.open(sealed, aad=b"payload:fil_2")
    assert caught.value.kid == "k1"


def test_a_flipped_byte_does_not_open(keyring):
    sealed = bytearray(keyring.seal(b"secret", aad=b"a"))
    sealed[-1] ^= 1
    with pytest.raises(errors.OpenFailed):
        keyring.open(bytes(sealed), aad=b"a")


def test_keys_rotate_old_values_still_open():
    """A new current key seals; the old key, kept in the ring, still opens old values."""
    k1, k2 = os.urandom(32), os.urandom(32)
    old = crypto.Keyring({"k1": k1}).seal(b"2025 payload", aad=b"r")
    ring = crypto.Keyring({"k1": k1, "k2": k2})
    assert ring.current == "k2"
    new = ring.seal(b"2026 payload", aad=b"r")
    assert crypto.sealed_kid(new) == "k2"
    assert ring.open(old, aad=b"r") == b"2025 payload"
    assert ring.open(new, aad=b"r") == b"2026 payload"
    with pytest.raises(errors.UnknownKey, match="'k1'") as caught:
        crypto.Keyring({"k2": k2}).open(old, aad=b"r")
    assert caught.value.kid == "k1"


def test_a_wrong_key_under_the_same_id_is_an_error_naming_it():
    sealed = crypto.Keyring({"k1": os.urandom(32)}).seal(b"x", aad=b"r")
    with pytest.raises(errors.OpenFailed, match="key 'k1'"):
        crypto.Keyring({"k1": os.urandom(32)}).open(sealed, aad=b"r")


@pytest.mark.parametrize("value", ["plain text payload", "edigw-sealed:1:!!!", ""])
def test_plaintext_is_never_opened_as_if_it_were_sealed(keyring, value):
    with pytest.raises(errors.NotSealed):
        keyring.open_text(value, aad="r")


def test_text_form_round_trip_for_store_columns(keyring):
    sealed = keyring.seal_text('{"ssn":"123-45-6789"}', aad="receipt:dlv_1")
    assert crypto.is_sealed_text(sealed)
    assert "123-45-6789" not in sealed
    assert keyring.open_text(sealed, aad="receipt:dlv_1") == '{"ssn":"123-45-6789"}'


def test_key_lines_parse_with_comments_and_semicolons():
    text = f"# the keys\n{key_line('a-2025')}\n\n{key_line('b.2026')} ; {key_line('c_2027')}\n"
    keys = crypto.parse_keys(text, source="keys.txt")
    assert list(keys) == ["a-2025", "b.2026", "c_2027"]
    assert all(len(k) == 32 for k in keys.values())


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("no-colon-here", "entry 1 is not kid:base64key"),
        ("k1:not*base64", "key 'k1' is not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "key 'k1' is 5 bytes"),
        (f"{key_line('k1')}\n{key_line('k1')}", "key id 'k1' appears twice"),
        (f"bad id:{base64.b64encode(os.urandom(32)).decode()}", "key id 'bad id'"),
        ("# only a comment\n", "holds no key"),
    ],
)
def test_a_bad_key_line_is_an_error_naming_the_source_and_key_id(text, match):
    with pytest.raises(errors.KeyringError, match=match) as caught:
        crypto.parse_keys(text, source="EDIGW_RECORDS_KEYS")
    assert caught.value.message.startswith("EDIGW_RECORDS_KEYS")
    assert "base64" in match or text.split(":")[-1] not in caught.value.message


def test_the_environment_configures_the_keyring(tmp_path):
    assert crypto.load_keyring({}) is None
    inline = crypto.load_keyring({"EDIGW_RECORDS_KEYS": f"{key_line('k1')};{key_line('k2')}"})
    assert inline is not None
    assert (inline.kids, inline.current) == (["k1", "k2"], "k2")
    keyfile = tmp_path / "keys"
    keyfile.write_text(f"{key_line('k1')}\n{key_line('k2')}\n")
    chosen = crypto.load_keyring(
        {"EDIGW_RECORDS_KEYS_FILE": str(keyfile), "EDIGW_RECORDS_KEY_ID": "k1"}
    )
    assert chosen is not None
    assert chosen.current == "k1"


@pytest.mark.parametrize(
    ("environ", "match"),
    [
        ({"EDIGW_RECORDS_KEYS": "x", "EDIGW_RECORDS_KEYS_FILE": "y"}, "not both"),
        ({"EDIGW_RECORDS_KEYS_FILE": "/nonexistent/keys"}, "cannot read /nonexistent/keys"),
        ({"EDIGW_RECORDS_KEY_ID": "k9"}, "names key 'k9' but no keys are configured"),
        (
            {"EDIGW_RECORDS_KEYS": key_line("k1"), "EDIGW_RECORDS_KEY_ID": "k9"},
            "current key 'k9' is not in the keyring",
        ),
    ],
)
def test_a_misconfigured_keyring_is_a_clear_error_at_start(environ, match):
    with pytest.raises(errors.KeyringError, match=match):
        crypto.load_keyring(environ)
