"""Encryption at rest: AES-256-GCM through ``cryptography``, with a keyring that rotates.

A sealed value carries everything needed to open it except the key::

    version (1 byte: 1) | key id length (1 byte) | key id (ASCII) | nonce (12 bytes)
    | ciphertext + GCM tag (16 bytes)

and is bound to *associated data* the caller chooses (a record's id and what the value is,
e.g. ``b"payload:fil_01H..."``): a value copied into another record, or any byte of it
changed, fails to open (``OpenFailed``), as does a value under a wrong key. A value naming a
key the keyring lacks is ``UnknownKey``; something that is not a sealed value at all is
``NotSealed``. Plaintext is never handed back as if it had been opened.

The keyring holds every key that may still be needed to read, and one *current* key that
seals. Rotating: add a new key (it becomes current when listed last, or when named), keep
the old ones for reading; values name their key, so old and new live side by side.

Keys come from the environment or a file, one key a line::

    # kid:base64 of 32 random bytes     (make one: edigw-2026a:$(head -c32 /dev/urandom | base64))
    edigw-2025a:3q2+7w0K...=
    edigw-2026a:q83vEjRWeJ...=

In ``EDIGW_RECORDS_KEYS`` the lines may also be separated by ``;``. ``EDIGW_RECORDS_KEYS_FILE``
names a file instead. The last key listed is the current one unless ``EDIGW_RECORDS_KEY_ID``
names another. Key ids are 1-64 of ``A-Z a-z 0-9 . _ -``. Random 96-bit nonces: rotate a key
well before it has sealed 2**32 values (NIST SP 800-38D).
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.records import errors

VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
KID = re.compile(r"[A-Za-z0-9._-]{1,64}")
ENV_KEYS = "EDIGW_RECORDS_KEYS"
ENV_KEYS_FILE = "EDIGW_RECORDS_KEYS_FILE"
ENV_KEY_ID = "EDIGW_RECORDS_KEY_ID"
#: how a sealed value starts in a text column (the live store's payload and receipt):
#: ``edigw-sealed:1:<key id>:`` + URL-safe base64 (the key id in clear, so the store can
#: tell which keys its values need without opening them; the sealed bytes name it too)
TEXT_PREFIX = "edigw-sealed:1:"
#: a plaintext column value that itself starts ``edigw-`` (a client's text payload may say
#: anything) is stored behind this marker, so it is never taken for a sealed value: read
#: back with the marker removed, never refused at start for a key nobody used
PLAIN_PREFIX = "edigw-plain:"


class Keyring:
    """Named AES-256-GCM keys: ``current`` seals, every key opens what names it."""

    def __init__(self, keys: Mapping[str, bytes], *, current: str | None = None) -> None:
        if not keys:
            raise errors.KeyringError("the records keyring holds no key")
        ciphers = {}
        for kid, key in keys.items():
            if not KID.fullmatch(kid):
                raise errors.KeyringError(
                    f"key id {kid!r} is not 1-64 of A-Z a-z 0-9 . _ -", kid=kid
                )
            if len(key) != KEY_BYTES:
                raise errors.KeyringError(
                    f"key {kid!r} is {len(key)} bytes; an AES-256 key is {KEY_BYTES}", kid=kid
                )
            ciphers[kid] = AESGCM(key)
        current = current if current is not None else list(keys)[-1]
        if current not in ciphers:
            raise errors.KeyringError(
                f"the current key {current!r} is not in the keyring (keys: {', '.join(keys)})",
                kid=current,
            )
        self._ciphers = ciphers
        #: the key id new values are sealed with
        self.current = current

    @property
    def kids(self) -> list[str]:
        """Every key id held, in the order given."""
        return list(self._ciphers)

    def seal(self, plaintext: bytes, *, aad: bytes) -> bytes:
        """``plaintext`` encrypted under the current key, bound to ``aad``."""
        kid = self.current.encode("ascii")
        header = bytes((VERSION, len(kid))) + kid
        nonce = os.urandom(NONCE_BYTES)
        return header + nonce + self._ciphers[self.current].encrypt(nonce, plaintext, header + aad)

    def open(self, sealed: bytes, *, aad: bytes) -> bytes:
        """The plaintext of a value ``seal`` made with the same ``aad``."""
        kid, header, nonce, body = _split(sealed)
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise errors.UnknownKey(
                f"the value was sealed with key {kid!r}, which the keyring does not hold "
                f"(keys: {', '.join(self._ciphers)})",
                kid=kid,
            )
        try:
            return cipher.decrypt(nonce, body, header + aad)
        except InvalidTag:
            raise errors.OpenFailed(
                f"the value does not open with key {kid!r}: a wrong key, or the value was "
                "altered or moved from another record",
                kid=kid,
            ) from None

    def seal_text(self, text: str, *, aad: str) -> str:
        """``seal`` for a text column: ``edigw-sealed:1:<kid>:`` + URL-safe base64."""
        sealed = self.seal(text.encode("utf-8"), aad=aad.encode("utf-8"))
        return text_prefix(self.current) + base64.urlsafe_b64encode(sealed).decode("ascii")

    def open_text(self, value: str, *, aad: str) -> str:
        """``open`` for a value ``seal_text`` made."""
        kid = text_kid(value)
        try:
            sealed = base64.urlsafe_b64decode(value[len(text_prefix(kid)) :].encode("ascii"))
        except (binascii.Error, UnicodeEncodeError):
            raise errors.NotSealed("the sealed value's base64 is damaged") from None
        if sealed_kid(sealed) != kid:
            raise errors.OpenFailed(f"the value's key id {kid!r} was altered", kid=kid)
        return self.open(sealed, aad=aad.encode("utf-8")).decode("utf-8")


def is_sealed_text(value: str) -> bool:
    """Whether a text column's value is sealed (the store's migration test)."""
    return value.startswith(TEXT_PREFIX)


def text_prefix(kid: str) -> str:
    """How a text value sealed under ``kid`` starts."""
    return f"{TEXT_PREFIX}{kid}:"


def text_kid(value: str) -> str:
    """The key id a sealed text value names (``NotSealed`` if it is not one)."""
    kid, sep, _ = value[len(TEXT_PREFIX) :].partition(":")
    if not is_sealed_text(value) or not sep or not KID.fullmatch(kid):
        raise errors.NotSealed("the value is not sealed (it does not start edigw-sealed:1:<kid>:)")
    return kid


# --- the live store's columns (``gateway.store.rows`` seals and opens through these) -------


def payload_aad(filing_id: str) -> str:
    """A payload's associated data: it opens in its own filing's row only."""
    return f"payload:{filing_id}"


def receipt_aad(filing_id: str, delivery_id: str) -> str:
    """A receipt's associated data: its own delivery of its own filing only."""
    return f"receipt:{filing_id}:{delivery_id}"


#: the live store's sealed columns: table → (column, its associated data from the row)
COLUMNS: dict[str, tuple[str, Callable[[Mapping[str, Any]], str]]] = {
    "filings": ("payload", lambda r: payload_aad(r["id"])),
    "deliveries": ("receipt", lambda r: receipt_aad(r["filing_id"], r["id"])),
}


def code_row(table: str, row: dict[str, Any], *, seal: bool = False) -> dict[str, Any]:
    """A live row (as a dict) with its sealed column opened, or sealed (``seal``): the
    archive holds plaintext (a segment is sealed whole) and restore seals again."""
    col, aad = COLUMNS.get(table, ("", str))
    if row.get(col) is not None:
        row[col] = (seal_column if seal else open_column)(row[col], aad=aad(row))
    return row


#: the three settings' names as the environment's own table keys them on POSIX
_RAW_NAMES = tuple(os.fsencode(name) for name in (ENV_KEYS, ENV_KEYS_FILE, ENV_KEY_ID))


def live() -> Keyring | None:
    """The keyring this process's environment configures (None: no key), read once per
    setting: what the live store seals new payloads and receipts with. A bad setting is a
    ``KeyringError``; ``serve`` and the CLI check it (and the store's keys) at start.

    Called twice per filing (in the store's writer thread), so on POSIX the settings are
    read from the environment's own table (``os.environ``'s, bytes to bytes) with a dict
    look-up each: ``os.environ.get`` encodes the name and, for a setting not set (no key:
    the common case), raises and catches a KeyError, 2 µs per call for the three.
    """
    table = getattr(os.environ, "_data", None) if os.name == "posix" else None
    if isinstance(table, dict):
        inline, file, current = _RAW_NAMES
        return _live(table.get(inline), table.get(file), table.get(current))
    env = os.environ
    return _live(env.get(ENV_KEYS), env.get(ENV_KEYS_FILE), env.get(ENV_KEY_ID))


@functools.lru_cache(maxsize=4)
def _live(
    inline: str | bytes | None, file: str | bytes | None, current: str | bytes | None
) -> Keyring | None:
    named = ((ENV_KEYS, inline), (ENV_KEYS_FILE, file), (ENV_KEY_ID, current))
    return load_keyring({name: os.fsdecode(value) for name, value in named if value})


def seal_column(text: str, *, aad: str) -> str:
    """A live column's value: sealed under the current key when one is configured."""
    ring = live()
    if ring is not None:
        return ring.seal_text(text, aad=aad)
    return PLAIN_PREFIX + text if text.startswith("edigw-") else text


def open_column(value: str, *, aad: str) -> str:
    """A live column's plaintext. A value written before any key was configured is
    plaintext and read as it is; a sealed one needs its key (``UnknownKey``, or a
    ``KeyringError`` when no key is configured at all), never handed back sealed."""
    if value.startswith(PLAIN_PREFIX):
        return value[len(PLAIN_PREFIX) :]
    if not is_sealed_text(value):
        return value
    ring = live()
    if ring is None:
        kid = text_kid(value)
        raise errors.KeyringError(
            f"the store holds values sealed with key {kid!r} and no key is configured "
            f"(set {ENV_KEYS} or {ENV_KEYS_FILE})",
            kid=kid,
        )
    return ring.open_text(value, aad=aad)


def sealed_kid(sealed: bytes) -> str:
    """The key id a sealed value names (``NotSealed`` if it is not one)."""
    return _split(sealed)[0]


def _split(sealed: bytes) -> tuple[str, bytes, bytes, bytes]:
    if len(sealed) < 2 or sealed[0] != VERSION:
        raise errors.NotSealed("the value is not a sealed value (unknown version byte)")
    end = 2 + sealed[1]
    if sealed[1] == 0 or len(sealed) < end + NONCE_BYTES + 16:
        raise errors.NotSealed("the sealed value is truncated")
    try:
        kid = sealed[2:end].decode("ascii")
    except UnicodeDecodeError:
        raise errors.NotSealed("the sealed value's key id is not ASCII") from None
    return kid, sealed[:end], sealed[end : end + NONCE_BYTES], sealed[end + NONCE_BYTES :]


def parse_keys(text: str, *, source: str) -> dict[str, bytes]:
    """``kid:base64`` lines (or ``;``-separated entries) → {kid: key}. ``source`` names
    where they came from in errors (an environment variable or a file), never the key."""
    keys: dict[str, bytes] = {}
    entries = [e.strip() for line in text.splitlines() for e in line.split(";")]
    for number, entry in enumerate(entries, 1):
        if not entry or entry.startswith("#"):
            continue
        kid, sep, encoded = entry.partition(":")
        kid = kid.strip()
        if not sep or not kid:
            raise errors.KeyringError(f"{source}: entry {number} is not kid:base64key")
        if not KID.fullmatch(kid):
            raise errors.KeyringError(
                f"{source}: key id {kid!r} is not 1-64 of A-Z a-z 0-9 . _ -", kid=kid
            )
        if kid in keys:
            raise errors.KeyringError(f"{source}: key id {kid!r} appears twice", kid=kid)
        try:
            keys[kid] = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise errors.KeyringError(
                f"{source}: key {kid!r} is not valid base64", kid=kid
            ) from None
        if len(keys[kid]) != KEY_BYTES:
            raise errors.KeyringError(
                f"{source}: key {kid!r} is {len(keys[kid])} bytes; an AES-256 key is "
                f"{KEY_BYTES} (base64 of 32 random bytes)",
                kid=kid,
            )
    if not keys:
        raise errors.KeyringError(f"{source} holds no key")
    return keys


def load_keyring(environ: Mapping[str, str]) -> Keyring | None:
    """The keyring the environment configures, or None when no key is configured.

    ``EDIGW_RECORDS_KEYS`` (the keys themselves) or ``EDIGW_RECORDS_KEYS_FILE`` (a file of
    them), not both; ``EDIGW_RECORDS_KEY_ID`` picks the current key. Any fault is a
    ``KeyringError`` naming the variable and key id, for the start-up check.
    """
    inline, file = environ.get(ENV_KEYS), environ.get(ENV_KEYS_FILE)
    current = environ.get(ENV_KEY_ID) or None
    if inline and file:
        raise errors.KeyringError(f"set {ENV_KEYS} or {ENV_KEYS_FILE}, not both", key=ENV_KEYS)
    if file:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise errors.KeyringError(
                f"{ENV_KEYS_FILE}: cannot read {file}: {reason}", key=ENV_KEYS_FILE
            ) from None
        return Keyring(parse_keys(text, source=file), current=current)
    if inline:
        return Keyring(parse_keys(inline, source=ENV_KEYS), current=current)
    if current:
        raise errors.KeyringError(
            f"{ENV_KEY_ID} names key {current!r} but no keys are configured "
            f"({ENV_KEYS} or {ENV_KEYS_FILE})",
            kid=current,
            key=ENV_KEY_ID,
        )
    return None
