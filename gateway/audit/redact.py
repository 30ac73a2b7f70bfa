"""Redaction: one place that masks sensitive values, for audit details and every log line.

What is masked, wherever it appears (strings nested in dicts and lists too):

- the three importer-number formats CBP uses: SSN ``NNN-NN-NNNN``, IRS number/EIN with
  suffix ``NN-NNNNNNNXX`` and CBP-assigned ``YYDDPP-NNNNN``;
- bearer/basic credentials in text (``Authorization: Bearer …``) and passwords in URLs
  (``postgresql://user:secret@host``);
- the value of any key that names a secret (``authorization``, ``token``, ``password``,
  ``secret``, ``api_key``, ``credentials``, ``dsn``, ``hmac_key``, …);
- configured JSON paths such as ``payload.importer.tax_id`` (``*`` matches any one key);
  a path matches at any depth, so ``importer.tax_id`` also masks
  ``{"filing": {"payload": {"importer": {"tax_id": …}}}}``.

Masks keep the last four characters where that helps an operator tell values apart
(``***-**-6789``, ``Bearer ****abcd``); passwords and short secrets keep nothing. Pure:
values in, redacted copies out; the input is never changed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"

#: importer-number formats; digits may not touch the match on either side
_SSN = r"\d{3}-\d{2}-\d{4}"
_EIN = r"\d{2}-\d{7}(?:[0-9A-Z]{2})?"
_CBP = r"\d{6}-\d{5}"
_IMPORTER_NUMBER = re.compile(rf"(?<!\d)(?<!\d-)(?:{_EIN}|{_CBP}|{_SSN})(?!\d)(?!-\d)")
#: what each of the three holds: a text without it needs no look (a third of the cost)
_DIGIT_DASH_DIGIT = re.compile(r"\d-\d")
_AUTH_SCHEME = re.compile(r"\b([Bb]earer|BEARER|Basic)(\s+)([A-Za-z0-9._~+/=-]{8,})")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*):([^@\s/]+)@")
_KEY_VALUE = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|hmac[_-]?key)"
    r"(\s*[=:]\s*)([^\s&,;\"']+)"
)

#: a string of word characters and dots alone (ids, enum values, names) can match none
#: of the patterns: each needs a '-', whitespace, ':' or '='
_PLAIN = re.compile(r"[\w.]*")
#: words one of which a key=value secret must contain (checked on the lower-cased text)
_KEY_WORDS = re.compile("passw|pwd|secret|token|key")
_plain = _PLAIN.fullmatch

#: keys whose values are secrets (compared lower-case, with '-' as '_')
SECRET_KEYS = frozenset(
    {
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "x_api_key",
        "api_key",
        "apikey",
        "access_key",
        "secret_key",
        "private_key",
        "client_secret",
        "secret",
        "password",
        "passwd",
        "passphrase",
        "token",
        "access_token",
        "refresh_token",
        "bearer",
        "credentials",
        "credential",
        "hmac_key",
        "dsn",
    }
)
#: of those, the ones whose last four characters never help and are never shown
_NOTHING_KEPT = frozenset({"password", "passwd", "passphrase", "private_key", "hmac_key"})


def mask(value: str, *, keep: int = 4) -> str:
    """``value`` with every letter and digit but the last ``keep`` replaced by ``*``.

    Separators stay, so ``123-45-6789`` reads ``***-**-6789``. Values too short to
    hide anything behind their last four are masked whole.
    """
    if keep <= 0 or len(value) < 2 * keep:
        return MASK
    head, tail = value[:-keep], value[-keep:]
    return re.sub(r"[0-9A-Za-z]", "*", head) + tail


def _secret(value: Any, key: str) -> Any:
    if value is None or value == "":
        return value
    if isinstance(value, str) and key not in _NOTHING_KEPT and len(value) >= 16:
        scheme, sep, rest = value.partition(" ")
        if sep and scheme.lower() in ("bearer", "basic", "token"):
            return f"{scheme} {mask(rest)}"
        return mask(value)
    return MASK


_SCALARS = frozenset({int, float, bool, type(None)})


#: every key name seen: its normalized form (lower case, '-' as '_') when it names a
#: secret, else "" — one dict look-up per key of every log line and audit row (an
#: ``lru_cache`` call and a set test cost three times that); emptied past 4096 names
_secret_names: dict[str, str] = {}


def _learn(name: str) -> str:
    """``name``'s entry in ``_secret_names``, worked out and kept."""
    norm = name.lower().replace("-", "_")
    found = norm if norm in SECRET_KEYS else ""
    if len(_secret_names) >= 4096:
        _secret_names.clear()
    _secret_names[name] = found
    return found


class Redactor:
    """Masks sensitive values; built once from config (``[audit] redact_paths``)."""

    def __init__(self, paths: Iterable[str] = ()) -> None:
        self.paths: tuple[tuple[str, ...], ...] = tuple(
            tuple(p for p in path.split(".") if p) for path in paths if path.strip(".")
        )

    # --- text ---------------------------------------------------------------------------

    def text(self, value: str) -> str:
        """A string with importer numbers, credentials and URL passwords masked."""
        if not value or _PLAIN.fullmatch(value):
            return value
        # each pattern runs only where cheap substring tests say it could match: most
        # log and audit strings (timestamps, ids, names) then cost a few ``in`` checks
        out = value
        if "-" in out and _DIGIT_DASH_DIGIT.search(out):
            out = _IMPORTER_NUMBER.sub(lambda m: mask(m.group(0)), out)
        low = out.lower()
        if "bearer" in low or "basic" in low:
            out = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{mask(m.group(3))}", out)
        if "://" in out:
            out = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{MASK}@", out)
        if ("=" in out or ":" in out) and _KEY_WORDS.search(low):
            out = _KEY_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", out)
        return out

    # --- structures ---------------------------------------------------------------------

    def value(self, value: Any) -> Any:
        """A redacted copy of any JSON-like value (dicts, lists, tuples, strings)."""
        return self._walk(value, ())

    def _walk(self, value: Any, partial: tuple[tuple[int, int], ...]) -> Any:
        kind = type(value)  # exact types first: isinstance on an ABC is slow
        if kind is str:
            return self.text(value)
        if kind in _SCALARS:
            return value
        if kind is dict or isinstance(value, Mapping):
            out: dict[Any, Any] = {}
            moved: tuple[tuple[int, int], ...] = ()
            for key, item in value.items():
                name = key if type(key) is str else str(key)
                norm = _secret_names.get(name)
                if norm is None:
                    norm = _learn(name)
                if norm:
                    out[key] = _secret(item, norm)
                    continue
                if self.paths:
                    moved, hit = self._advance(partial, name)
                    if hit:
                        out[key] = _masked(item)
                        continue
                # the common leaves inline (this runs for every log line and audit row)
                item_kind = type(item)
                if item_kind is str:  # most are plain: no call to ``text`` for them
                    out[key] = item if _plain(item) else self.text(item)
                elif item_kind in _SCALARS:
                    out[key] = item
                else:
                    out[key] = self._walk(item, moved)
            return out
        if kind is list or kind is tuple or isinstance(value, list | tuple):
            return [self._walk(item, partial) for item in value]
        if isinstance(value, str):  # a str subclass (an enum member, say)
            return self.text(value)
        return value

    def _advance(
        self, partial: tuple[tuple[int, int], ...], key: str
    ) -> tuple[tuple[tuple[int, int], ...], bool]:
        """Path matches after stepping into ``key``: (still partial, any complete)."""
        if not self.paths:
            return (), False
        moved: list[tuple[int, int]] = []
        hit = False
        starts = ((i, 0) for i in range(len(self.paths)))
        for i, pos in (*partial, *starts):
            path = self.paths[i]
            if path[pos] not in ("*", key):
                continue
            if pos + 1 == len(path):
                hit = True
            else:
                moved.append((i, pos + 1))
        return tuple(dict.fromkeys(moved)), hit

    # --- structlog ------------------------------------------------------------------------

    def __call__(self, logger: Any, method_name: str, event_dict: Any) -> Any:
        """A structlog processor: every log line passes through ``value``."""
        return self.value(event_dict)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, Mapping):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return MASK if value is not None else None
