"""Bearer tokens with scopes, compared in constant time, never logged.

A token is configured by name with the SHA-256 of its secret (``sha256 = "…"``) or
with the name of an environment variable holding the secret (``secret_env``). The
presented secret is hashed and compared with every configured digest using
``hmac.compare_digest``, so timing tells nothing about which one (if any) matched.

A token may be limited to filer codes and environments (``filer_codes``,
``environments``). Such a *scoped* principal sees a filing outside its set exactly as a
filing that does not exist (404, the same body); a submit for a filer code outside it is
403 naming ``filer_code`` (the caller's own input: saying so leaks nothing). Every route
says how it treats a scoped principal (``FILER_SCOPE``); a route it does not name serves
unscoped principals only.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from gateway import config, errors


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name, its scopes, the filers it may see (None: all)."""

    name: str
    scopes: frozenset[str]
    filer_codes: frozenset[str] | None = None
    environments: frozenset[str] | None = None

    @property
    def scoped(self) -> bool:
        """Limited to some filer codes or environments."""
        return self.filer_codes is not None or self.environments is not None

    def sees(self, filer_code: str, environment: str) -> bool:
        """May this principal see (and act on) a filing of this filer and environment?"""
        return (self.filer_codes is None or filer_code in self.filer_codes) and (
            self.environments is None or environment in self.environments
        )

    def filters(self) -> dict[str, tuple[str, ...] | None]:
        """The set as list/bulk filter fields (``filer_codes``, ``environments``; None: all)."""
        return {
            "filer_codes": None if self.filer_codes is None else tuple(self.filer_codes),
            "environments": None if self.environments is None else tuple(self.environments),
        }

    def may_submit(self, filer_code: str, environment: str) -> None:
        """403 naming the field when a submit is outside this principal's set."""
        if self.filer_codes is not None and filer_code not in self.filer_codes:
            raise errors.Forbidden(
                f"token {self.name!r} may not submit for filer_code {filer_code!r}",
                details={"loc": "filer_code", "filer_codes": sorted(self.filer_codes)},
            )
        if self.environments is not None and environment not in self.environments:
            raise errors.Forbidden(
                f"token {self.name!r} may not submit for environment {environment!r}",
                details={"loc": "environment", "environments": sorted(self.environments)},
            )


class FilerScope(StrEnum):
    """How a route treats a principal scoped to filer codes or environments."""

    #: no token at all (health, the OpenAPI document, dashboard shells)
    PUBLIC = "public"
    #: carries no filer's data (adapters, the outage calendar): served as to anyone
    SHARED = "shared"
    #: ``{id}`` is a filing id: outside the set answers 404 exactly like a missing id
    FILING = "filing"
    #: the handler narrows its answer (lists, bulk actions) or checks the input (submit)
    NARROWED = "narrowed"
    #: spans every filer (queue totals, metrics, outages, raw acks): unscoped tokens only
    UNSCOPED = "unscoped"


#: (method, path) → how a scoped principal is served; a route missing here is UNSCOPED
FILER_SCOPE: dict[tuple[str, str], FilerScope] = {
    ("POST", "/v1/filings"): FilerScope.NARROWED,
    ("POST", "/v1/filings/batch"): FilerScope.NARROWED,
    ("GET", "/v1/filings"): FilerScope.NARROWED,
    ("GET", "/v1/filings/{id}"): FilerScope.FILING,
    ("GET", "/v1/filings/{id}/history"): FilerScope.FILING,
    ("POST", "/v1/filings/{id}/retry"): FilerScope.FILING,
    ("POST", "/v1/filings/{id}/cancel"): FilerScope.FILING,
    ("GET", "/v1/filings/{id}/acks"): FilerScope.FILING,
    ("POST", "/v1/filings/{id}/resend"): FilerScope.FILING,
    ("POST", "/v1/filings/{id}/close-ack"): FilerScope.FILING,
    ("GET", "/v1/acks"): FilerScope.NARROWED,
    ("GET", "/v1/callbacks"): FilerScope.NARROWED,
    ("POST", "/v1/callbacks/retry"): FilerScope.NARROWED,
    ("POST", "/v1/deliveries/retry"): FilerScope.NARROWED,
    ("POST", "/v1/deliveries/cancel"): FilerScope.NARROWED,
    ("GET", "/v1/adapters"): FilerScope.SHARED,
    ("GET", "/v1/outages"): FilerScope.SHARED,
    ("POST", "/v1/outages"): FilerScope.UNSCOPED,
    ("DELETE", "/v1/outages/{id}"): FilerScope.UNSCOPED,
    ("GET", "/v1/pauses"): FilerScope.SHARED,
    ("POST", "/v1/pauses"): FilerScope.UNSCOPED,
    ("POST", "/v1/admin/reload"): FilerScope.UNSCOPED,
    ("DELETE", "/v1/pauses/{id}"): FilerScope.UNSCOPED,
    # records: live or archived, so the handler checks (a record outside the set is 404)
    ("GET", "/v1/records"): FilerScope.NARROWED,
    ("GET", "/v1/records/{id}"): FilerScope.NARROWED,
    ("POST", "/v1/records/{id}/restore"): FilerScope.NARROWED,
    ("POST", "/v1/acks"): FilerScope.UNSCOPED,
    ("GET", "/v1/rejected-events"): FilerScope.UNSCOPED,
    ("POST", "/v1/rejected-events/{id}/replay"): FilerScope.UNSCOPED,
    ("GET", "/v1/x12/gaps"): FilerScope.UNSCOPED,
    ("GET", "/metrics"): FilerScope.UNSCOPED,
    ("GET", "/v1/overview"): FilerScope.UNSCOPED,
    ("GET", "/healthz"): FilerScope.PUBLIC,
    ("GET", "/livez"): FilerScope.PUBLIC,
    ("GET", "/readyz"): FilerScope.PUBLIC,
    ("GET", "/openapi.json"): FilerScope.PUBLIC,
    ("GET", "/docs"): FilerScope.PUBLIC,
    ("GET", "/"): FilerScope.PUBLIC,
    ("GET", "/ui/"): FilerScope.PUBLIC,
    ("GET", "/ui/filings/{id}"): FilerScope.PUBLIC,
    ("GET", "/ui/static/{name}"): FilerScope.PUBLIC,
    ("GET", "/ui/panels"): FilerScope.UNSCOPED,
    ("GET", "/ui/events"): FilerScope.UNSCOPED,
    ("GET", "/ui/filings/{id}/panel"): FilerScope.FILING,
    # the records pages: shells public, fragments narrowed as /v1/records (a record may be
    # archived, so the handler checks: another filer's id is a missing one's 404)
    ("GET", "/ui/records"): FilerScope.PUBLIC,
    ("GET", "/ui/records/{id}"): FilerScope.PUBLIC,
    ("GET", "/ui/records/panel"): FilerScope.NARROWED,
    ("GET", "/ui/records/{id}/panel"): FilerScope.NARROWED,
}


def not_found(filing_id: str) -> errors.NotFound:
    """The 404 of a filing that does not exist, word for word (``service.get``'s)."""
    return errors.NotFound(f"no filing {filing_id}", details={"id": filing_id})


def refuse_unscoped_only(principal: Principal) -> None:
    """403 for a scoped principal on a route that spans every filer."""
    if principal.scoped:
        raise errors.Forbidden(
            f"token {principal.name!r} is limited to some filers; this route spans every filer",
            details={"scope": "all_filers"},
        )


ANONYMOUS = Principal("local", frozenset({"submit", "read", "operate", "admin"}))


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Authenticator:
    """Resolves an Authorization header to a Principal (or refuses)."""

    def __init__(self, section: config.AuthSection, environ: Mapping[str, str] | None = None):
        self.enabled = section.mode == "token"
        environ = os.environ if environ is None else environ
        self._tokens: list[tuple[bytes, Principal]] = []
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
            principal = Principal(
                name,
                frozenset(token.scopes),
                None if token.filer_codes is None else frozenset(token.filer_codes),
                None if token.environments is None else frozenset(token.environments),
            )
            self._tokens.append((hexdigest.encode(), principal))

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
        for expected, principal in self._tokens:
            if hmac.compare_digest(presented, expected) and found is None:
                found = principal
        if found is None:
            raise errors.Unauthorized("the bearer token is not valid")
        return found

    @staticmethod
    def require(principal: Principal, scope: str) -> None:
        if scope not in principal.scopes:
            raise errors.Forbidden(
                f"token {principal.name!r} lacks scope {scope!r}", details={"scope": scope}
            )
