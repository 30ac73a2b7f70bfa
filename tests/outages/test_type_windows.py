"""Calendar windows with per-filing-type actions (issue 21): hold, probe, refuse_intake,
end to end on a live gateway and a ManualClock; and the shipped ACE production calendar."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway import config, errors
from gateway.cli import outages as outages_cli

from .conftest import WEDNESDAY_NOON, event, outage_config
from .test_controls import audit

REPO = Path(__file__).resolve().parents[2]
#: Wednesday 11:00-13:00 in New York: WEDNESDAY_NOON is inside it
WINDOW = {
    "timezone": "America/New_York",
    "windows": [
        {
            "days": ["wed"],
            "start": "11:00",
            "end": "13:00",
            "policy": "probe",
            "types": {"inbond": "refuse_intake", "entry": "hold"},
        }
    ],
}


def windowed(tmp_path: Path) -> dict[str, Any]:
    cfg = outage_config(tmp_path, calendars={"van": WINDOW})
    cfg["adapters"]["outbox"]["calendars"] = ["van"]
    return cfg


async def test_refuse_intake_answers_409_naming_the_window_and_stores_nothing(
    tmp_path, live_gateway
):
    """An in-bond POST inside the window: 409 naming the calendar and its end; nothing
    stored or audited; in a batch only that item is refused; after the window: 202."""
    live = await live_gateway(windowed(tmp_path))
    status, body = await live.call("POST", "/v1/filings", event("INB-1", filing_type="inbond"))
    assert status == 409
    err = body["error"]
    assert err["code"] == "refused_in_window"
    assert "van" in err["message"] and "2026-01-07T18:00:00Z" in err["message"]
    assert err["details"] == {
        "filing_type": "inbond",
        "calendar": "van",
        "window_start": "2026-01-07T16:00:00Z",
        "window_end": "2026-01-07T18:00:00Z",
    }
    status, batch = await live.call(
        "POST", "/v1/filings/batch", [event("ISF-1"), event("INB-2", filing_type="inbond")]
    )
    assert [r["http_status"] for r in batch["results"]] == [202, 409]
    _, listed = await live.call("GET", "/v1/filings?filing_type=inbond")
    assert listed["items"] == []
    assert len(audit(tmp_path, "filing.accepted")) == 1  # the ISF only
    live.clock.set(WEDNESDAY_NOON + timedelta(hours=1))  # the window is over
    status, _ = await live.call("POST", "/v1/filings", event("INB-1", filing_type="inbond"))
    assert status == 202


async def test_a_held_type_waits_the_window_out_without_attempts(tmp_path, live_gateway):
    """``entry = hold``: accepted, not sent, no attempt, shown in /readyz; the window's
    other types probe as before; at the window's end the entry goes."""
    live = await live_gateway(windowed(tmp_path))
    _, entry = await live.call("POST", "/v1/filings", event("E-1", filing_type="entry"))
    _, isf = await live.call("POST", "/v1/filings", event("ISF-1"))
    await live.wait_status(isf["id"], "delivered")  # the probe window's one send
    await live.advance(30 * 60)
    _, body = await live.call("GET", f"/v1/filings/{entry['id']}")
    assert [(d["state"], d["attempts"]) for d in body["deliveries"]] == [("pending", 0)]
    _, ready = await live.call("GET", "/readyz")
    assert ready["held"]["outbox"] == {
        "entry": "hold window (van) until 2026-01-07T18:00:00Z",
        "inbond": "refuse_intake window (van) until 2026-01-07T18:00:00Z",
    }
    await live.advance(31 * 60)  # 13:01 in New York
    body = await live.wait_status(entry["id"], "delivered")
    assert body["deliveries"][0]["attempts"] == 1


def test_probe_for_a_type_inside_a_hold_window_is_refused_naming_the_types(tmp_path):
    """A type cannot be looser than its window: the config error says which and how."""
    bad = {**WINDOW["windows"][0], "policy": "hold", "types": {"isf": "probe"}}
    cfg = outage_config(tmp_path, calendars={"van": {**WINDOW, "windows": [bad]}})
    with pytest.raises(errors.ConfigError, match=r"\['isf'\].*'probe' inside a 'hold' window"):
        config.parse_config(cfg, {})


def test_an_unknown_type_or_action_is_a_config_error(tmp_path):
    for types in ({"nope": "hold"}, {"isf": "sometimes"}):
        bad = {**WINDOW["windows"][0], "types": types}
        cfg = outage_config(tmp_path, calendars={"van": {**WINDOW, "windows": [bad]}})
        with pytest.raises(errors.ConfigError, match="types"):
            config.parse_config(cfg, {})


def test_the_shipped_ace_production_calendar_names_in_bond_and_e214(tmp_path):
    """config/ace-production-calendar.toml loads over the built-in calendar; its Saturday
    window refuses in-bond and holds e214, and the Tue/Thu windows name no type."""
    shipped = tomllib.loads((REPO / "config/ace-production-calendar.toml").read_text())
    cfg = config.parse_config(outage_config(tmp_path, **shipped), {})
    windows = cfg.calendars["ace-production"].windows
    assert [w.policy for w in windows] == ["probe", "probe"]
    assert windows[0].types == {}
    assert {t.value: a for t, a in windows[1].types.items()} == {
        "inbond": "refuse_intake",
        "e214": "hold",
    }


async def test_windows_list_their_types_in_the_api_the_cli_and_the_dashboard(
    tmp_path, live_gateway
):
    """GET /v1/outages?upcoming=N, `outages --next` and the dashboard say what each window
    does per type."""
    cfg = windowed(tmp_path)
    live = await live_gateway(cfg)
    _, listed = await live.call("GET", "/v1/outages?upcoming=1")
    [w] = listed["calendars"]["van"]["windows"]
    assert w["types"] == {"entry": "hold", "inbond": "refuse_intake"}
    assert "types" not in listed["calendars"]["ace-cert"]["windows"][0]
    async with live.session.get(live.url + "/ui/panels") as r:
        assert "inbond: refuse_intake" in await r.text()
    line = outages_cli.format_window(w, "America/New_York")
    assert line.endswith("probe entry=hold inbond=refuse_intake")
