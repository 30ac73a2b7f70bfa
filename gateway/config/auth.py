"""``[auth]``: bearer tokens (by SHA-256 or from an environment variable), their scopes,
and the filer codes and environments each may see (absent: all)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from gateway.config.policies import STRICT

Scope = Literal["submit", "read", "operate", "admin"]


#: a filer code as a token's scope names it: non-empty, no surrounding blanks
FilerCode = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^\S(.*\S)?$")]


def _default_scopes() -> list[Scope]:
    return ["submit", "read"]


class TokenConfig(BaseModel):
    """`[auth.tokens.NAME]`: one bearer token, by the SHA-256 of its secret or from env."""

    model_config = STRICT

    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    secret_env: str | None = Field(default=None, description="env var holding the secret")
    scopes: list[Scope] = Field(default_factory=_default_scopes)
    filer_codes: list[FilerCode] | None = Field(
        default=None,
        min_length=1,
        description="only filings of these filer codes (absent: every filer code)",
    )
    environments: list[Literal["cert", "production"]] | None = Field(
        default=None,
        min_length=1,
        description="only filings of these environments (absent: both)",
    )

    @model_validator(mode="after")
    def _one_source(self) -> TokenConfig:
        if (self.sha256 is None) == (self.secret_env is None):
            raise ValueError("give exactly one of sha256 or secret_env")
        return self


class AuthSection(BaseModel):
    """`[auth]`: bearer tokens with scopes; `mode = "none"` only on loopback."""

    model_config = STRICT

    mode: Literal["none", "token"] = "none"
    tokens: dict[str, TokenConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _tokens_when_on(self) -> AuthSection:
        if self.mode == "token" and not self.tokens:
            raise ValueError("auth mode 'token' needs at least one [auth.tokens.NAME]")
        return self
