"""Bearer tokens with scopes, compared in constant time, never logged.

A token is configured by name with the SHA-256 of its secret (``sha256 = "…"``) or
with the name of an environment variable holding the secret (``secret_env``). The
presented secret is hashed and compared with every configured digest using
``hmac.compare_digest``, so timing tells nothing about which one (if any) matched.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass

from gateway import config, errors


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name and its scopes."""

    name: str
    scopes: frozenset[str]


ANONYMOUS = Principal("local", frozenset({"submit", "read", "operate", "admin"}))


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Authenticator:
    """Resolves an Authorization header to a Principal (or refuses)."""

    def __init__(self, section: config.AuthSection, environ: Mapping[str, str] | None = None):
        self.enabled = section.mode == "token"
        environ = os.environ if environ is None else environ
        self._tokens: list[tuple[str, bytes, frozenset[str]]] = []
        for name, token in section.tokens.items():
            if token.sha256 is not None:
                hexdigest = token.sha256.lower()
            else:
                secret = environ.get(token.secret_env or "")
                if not secret:
                    raise errors.ConfigError(
                        f"auth.tokens.{name}.secret_env: env var {token.secret_env} is not set",
                        key=f"auth.tokens.{name}.secret_env",
                    )
                hexdigest = digest(secret)
            self._tokens.append((name, hexdigest.encode(), frozenset(token.scopes)))

    def authenticate(self, header: str | None) -> Principal:
        if not self.enabled:
            return ANONYMOUS
        scheme, _, secret = (header or "").strip().partition(" ")
        # RFC 9110 section 11.1: the scheme is case-insensitive ("bearer", "BEARER")
        if scheme.lower() != "bearer" or not secret.strip():
            raise errors.Unauthorized("a bearer token is required (Authorization: Bearer …)")
        try:
            presented = digest(secret.strip()).encode()
        except UnicodeEncodeError as exc:  # bytes that are not UTF-8 cannot be any token
            raise errors.MalformedInput(
                "header.Authorization: not UTF-8 text",
                details=[{"loc": "header.Authorization", "msg": "not UTF-8 text"}],
            ) from exc
        found: Principal | None = None
        for name, expected, scopes in self._tokens:
            if hmac.compare_digest(presented, expected) and found is None:
                found = Principal(name, scopes)
        if found is None:
            raise errors.Unauthorized("the bearer token is not valid")
        return found

    @staticmethod
    def require(principal: Principal, scope: str) -> None:
        if scope not in principal.scopes:
            raise errors.Forbidden(
                f"token {principal.name!r} lacks scope {scope!r}", details={"scope": scope}
            )
