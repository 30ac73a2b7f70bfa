"""`[records]`: a wrong or missing key is a clear error at start naming it."""

from __future__ import annotations

from typing import Any

import pytest

from gateway import config, errors
from gateway.clock import ManualClock
from gateway.service import mover
from tests.store.test_contract import T0


def parse(records: dict[str, Any]) -> config.Config:
    return config.parse_config({"records": records})


@pytest.mark.parametrize(
    ("records", "named"),
    [
        ({"enabeld": True}, "records.enabeld"),
        ({"interval": "soon"}, "records.interval"),
        ({"batch_filings": 0}, "records.batch_filings"),
        ({"max_share": 0}, "records.max_share"),
        ({"retention": [{"filing_type": "isf", "live": "7d"}]}, "records.retention[0].total"),
        (
            {"retention": [{"filing_type": "isf", "live": "7d", "total": "365d"}]},
            "no retention rule",
        ),
        ({"retention": [{"live": "9d", "total": "365d", "colour": "red"}]}, "colour"),
        ({"fields": {"bill_of_lading": {"isf": []}}}, "bill_of_lading.isf"),
    ],
)
def test_a_bad_records_key_is_named(records: dict[str, Any], named: str) -> None:
    with pytest.raises(errors.ConfigError) as caught:
        parse(records)
    assert named in str(caught.value)


def test_defaults_keep_the_mover_off() -> None:
    cfg = parse({})
    assert not cfg.records.enabled
    assert mover.build(cfg, None, ManualClock(T0), {}, 0) is None  # type: ignore[arg-type]


def test_a_bad_key_stops_start_up(tmp_path: Any) -> None:
    cfg = parse({"enabled": True, "dir": str(tmp_path)})
    with pytest.raises(errors.ConfigError) as caught:
        mover.build(cfg, None, ManualClock(T0), {"EDIGW_RECORDS_KEYS": "k1:short"}, 0)  # type: ignore[arg-type]
    assert "EDIGW_RECORDS_KEYS" in str(caught.value)
