"""`[records]`: the records archive (issue 20) — whether the mover runs, where the archive
lives, how often and how much it moves, the retention rules and the search fields.

Keys (AES-GCM, for the segments) come from the environment only
(``EDIGW_RECORDS_KEYS`` / ``_KEYS_FILE`` / ``_KEY_ID``, see ``gateway.records.crypto``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator

from gateway.config.policies import STRICT
from gateway.durations import Duration
from gateway.records import extract
from gateway.records import retention as keep


class RecordsSection(BaseModel):
    """`[records]`: the archive of finished filings (off unless ``enabled``)."""

    model_config = STRICT

    enabled: bool = Field(default=False, description="run the mover in `serve`")
    dir: str | None = Field(
        default=None,
        description="the archive directory (segments/ and index.sqlite); default: records/ "
        "beside the SQLite file, var/records otherwise",
    )
    interval: Duration = Field(default=60.0, gt=0, description="time between mover rounds")
    batch_filings: int = Field(default=1000, ge=1, le=100_000, description="filings a round")
    max_share: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="while a backlog drains, the share of time the mover may work (it rests "
        "the rest, so intake keeps the process and the database writer)",
    )
    behind_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="while the mover falls behind (the oldest filing due to move waits longer "
        "round after round), its share rises by half a round up to this, and falls back to "
        "max_share as it catches up",
    )
    retention: list[dict[str, Any]] = Field(
        default_factory=list,
        description="[[records.retention]] tables: filing_type, environment, live, total "
        "(none: production 90d live / 5 years, cert 7d / 90d)",
    )
    fields: dict[str, dict[str, list[str]]] = Field(
        default_factory=dict,
        description="[records.fields] field = {filing type glob = [paths]}: search fields",
    )

    @field_validator("retention")
    @classmethod
    def _rules(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        keep.Policy(keep.rules_from_config(value) or keep.DEFAULT_RULES)
        return value

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, dict[str, list[str]]]) -> dict[str, dict[str, list[str]]]:
        extract.rules_from_config(value)
        return value

    def rules(self) -> tuple[keep.Rule, ...]:
        return keep.rules_from_config(self.retention) or keep.DEFAULT_RULES

    def field_rules(self) -> tuple[extract.FieldRule, ...]:
        return extract.rules_from_config(self.fields)

    def directory(self, store_url: str) -> Path:
        """Where the archive lives for a gateway on ``store_url``."""
        if self.dir:
            return Path(self.dir)
        if store_url.startswith("sqlite:///"):
            return Path(store_url.removeprefix("sqlite:///")).parent / "records"
        return Path("var/records")
