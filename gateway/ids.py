"""Sortable identifiers (ULID layout: 48-bit milliseconds + 80 random bits, Crockford base32).

A prefix names the kind (``fil_``, ``dlv_``), as Stripe's ids do, so an operator
reading a log line knows what an id points at.
"""

from __future__ import annotations

import base64
import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last = (0, 0)


#: base64's RFC 4648 base32 alphabet → Crockford's (both 5 bits a character, in order)
_FROM_RFC4648 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode())


def _encode(value: int, length: int) -> str:
    """``value`` (< 32**length) as ``length`` Crockford base32 digits, most significant first.

    base64.b32encode does the bit work in C: the value is written big-endian into whole
    5-byte groups (8 digits each) and only the last ``length`` digits are kept.
    """
    groups = -(-length // 8)
    raw = base64.b32encode(value.to_bytes(groups * 5, "big"))
    return raw[-length:].translate(_FROM_RFC4648).decode()


def ulid() -> str:
    """A 26-character ULID, monotonic within this process."""
    global _last
    with _lock:
        ms = time.time_ns() // 1_000_000
        last_ms, last_rand = _last
        if ms <= last_ms:
            ms, rand = last_ms, last_rand + 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1  # room to increment
        _last = (ms, rand)
    return _encode(ms, 10) + _encode(rand, 16)


def new_id(prefix: str) -> str:
    return f"{prefix}_{ulid()}"
