"""Outages end to end: a real gateway on loopback, a real SQLite file, a ManualClock."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import datetime, timedelta

import structlog

from gateway import models
from gateway.cli import main as cli

from .conftest import WEDNESDAY_NOON, event, outage_config


def outbox_files(tmp_path) -> list:
    d = tmp_path / "outbox"
    return (
        sorted(p for p in d.rglob("*") if p.is_file() and not p.name.startswith("."))
        if d.exists()
        else []
    )


async def adapter_view(live, name: str) -> dict:
    _, body = await live.call("GET", "/v1/adapters")
    return next(a for a in body["adapters"] if a["name"] == name)


def audit_events(tmp_path) -> list[str]:
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        return [r[0] for r in db.execute("SELECT event FROM audit ORDER BY seq")]


async def test_announced_outage_holds_waiting_deliveries_until_it_ends(tmp_path, live_gateway):
    """Filings accepted during an announced outage go out only once its end has passed."""
    live = await live_gateway(outage_config(tmp_path))
    ends = WEDNESDAY_NOON + timedelta(hours=1)
    status, outage = await live.call(
        "POST",
        "/v1/outages",
        {
            "adapter": "outbox",
            "ends_at": models.utc_iso(ends),
            "reason": "ACE down",
            "reference": "CSMS #66012345",
        },
    )
    assert status == 201
    assert outage["id"].startswith("out_")
    ids = [(await live.call("POST", "/v1/filings", event(f"BOL-{i}")))[1]["id"] for i in range(3)]
    for fid in ids:
        body = await live.wait_status(fid, "deferred")
        [d] = body["deliveries"]
        assert d["attempts"] == 0
        assert d["next_attempt_at"] == models.utc_iso(ends)
    await live.advance(59 * 60)
    assert outbox_files(tmp_path) == []
    for fid in ids:  # not claimed either (a claimed one would be in flight)
        assert (await live.call("GET", f"/v1/filings/{fid}"))[1]["status"] == "deferred"
    await live.advance(61)
    for fid in ids:
        body = await live.wait_status(fid, "delivered")
        assert body["deliveries"][0]["attempts"] == 1
    assert len(outbox_files(tmp_path)) == 3


async def test_removing_an_announced_outage_resumes_sending_at_once(tmp_path, live_gateway):
    """An open-ended outage holds; DELETE releases the deferred deliveries without a tick."""
    live = await live_gateway(outage_config(tmp_path))
    _, outage = await live.call("POST", "/v1/outages", {"environment": "production"})
    _, filing = await live.call("POST", "/v1/filings", event("BOL-1"))
    _, cert = await live.call("POST", "/v1/filings", event("BOL-2", environment="cert"))
    await live.wait_status(filing["id"], "deferred")
    await live.wait_status(cert["id"], "delivered")  # another environment is not held
    status, removed = await live.call("DELETE", f"/v1/outages/{outage['id']}")
    assert status == 200
    assert removed["removed_at"] is not None
    await live.wait_status(filing["id"], "delivered", timeout=30)
    status, _ = await live.call("DELETE", f"/v1/outages/{outage['id']}")
    assert status == 409
    events = audit_events(tmp_path)
    assert "outage.added" in events
    assert "outage.removed" in events


async def test_hold_window_sends_nothing_inside_it_even_for_new_filings(tmp_path, live_gateway):
    """A `hold` window defers every due delivery to its end, new ones included; none spent."""
    data = outage_config(
        tmp_path,
        calendars={
            "maint": {
                "timezone": "America/New_York",
                "windows": [{"days": ["wed"], "start": "11:00", "end": "13:00", "policy": "hold"}],
            }
        },
    )
    data["adapters"]["outbox"]["calendars"] = ["maint"]
    live = await live_gateway(data)  # 12:00 New York: inside the window
    window_end = WEDNESDAY_NOON + timedelta(hours=1)
    _, first = await live.call("POST", "/v1/filings", event("BOL-1"))
    body = await live.wait_status(first["id"], "deferred")
    assert body["deliveries"][0]["next_attempt_at"] == models.utc_iso(window_end)
    await live.advance(30 * 60)
    _, second = await live.call("POST", "/v1/filings", event("BOL-2"))
    body = await live.wait_status(second["id"], "deferred")
    assert body["deliveries"][0]["attempts"] == 0
    await live.advance(29 * 60)
    assert outbox_files(tmp_path) == []
    for fid in (first["id"], second["id"]):
        assert (await live.call("GET", f"/v1/filings/{fid}"))[1]["status"] == "deferred"
    await live.advance(60)
    await live.wait_status(first["id"], "delivered")
    await live.wait_status(second["id"], "delivered")
    assert (await adapter_view(live, "outbox"))["calendars"] == ["maint"]


async def test_503_with_retry_after_defers_to_that_time_without_spending_an_attempt(
    tmp_path, live_gateway, ace_receiver
):
    """The http adapter maps 503 + Retry-After to OutageError(until); the breaker opens."""
    data = outage_config(
        tmp_path,
        adapters={"ace": {"type": "http", "url": ace_receiver.url, "timeout": "5s"}},
        routes=[{"filing_types": ["*"], "adapters": ["ace"]}],
    )
    live = await live_gateway(data)
    ace_receiver.clock = live.clock
    ace_receiver.down_until = WEDNESDAY_NOON + timedelta(seconds=100)
    ace_receiver.retry_after = "120"
    _, filing = await live.call("POST", "/v1/filings", event("BOL-1"))
    body = await live.wait_status(filing["id"], "deferred")
    [d] = body["deliveries"]
    assert d["attempts"] == 0
    assert d["next_attempt_at"] == models.utc_iso(WEDNESDAY_NOON + timedelta(seconds=120))
    assert (await adapter_view(live, "ace"))["breaker"]["state"] == "open"
    await live.advance(121)
    body = await live.wait_status(filing["id"], "delivered")
    assert body["deliveries"][0]["attempts"] == 1
    assert (await adapter_view(live, "ace"))["breaker"]["state"] == "closed"
    assert [r[1] for r in ace_receiver.log] == [503, 200]


async def test_filing_due_inside_a_known_outage_is_flagged_at_risk_once(tmp_path, live_gateway):
    """due_by inside an announced outage → at_risk on the filing and in ?at_risk=true."""
    live = await live_gateway(outage_config(tmp_path, deadlines={"scan_interval": "1s"}))
    ends = WEDNESDAY_NOON + timedelta(days=2)
    await live.call("POST", "/v1/outages", {"adapter": "outbox", "ends_at": models.utc_iso(ends)})
    due = models.utc_iso(WEDNESDAY_NOON + timedelta(days=1))
    _, risky = await live.call("POST", "/v1/filings", event("BOL-1", due_by=due))
    later = models.utc_iso(WEDNESDAY_NOON + timedelta(days=30))
    _, safe = await live.call("POST", "/v1/filings", event("BOL-2", due_by=later))
    await live.advance(2)
    body = await live.wait_status(risky["id"], "deferred")
    assert body["at_risk"] is True
    _, page = await live.call("GET", "/v1/filings?at_risk=true")
    assert [f["id"] for f in page["items"]] == [risky["id"]]
    _, other = await live.call("GET", f"/v1/filings/{safe['id']}")
    assert other["at_risk"] is False
    await live.advance(2)
    assert audit_events(tmp_path).count("filing.at_risk") == 1


async def test_outage_changes_need_the_operate_scope(tmp_path, live_gateway):
    """A read token may list outages but not add or remove them."""
    secret = "read-only-secret"
    data = outage_config(
        tmp_path,
        auth={
            "mode": "token",
            "tokens": {
                "viewer": {
                    "sha256": hashlib.sha256(secret.encode()).hexdigest(),
                    "scopes": ["read"],
                }
            },
        },
    )
    live = await live_gateway(data)
    headers = {"Authorization": f"Bearer {secret}"}
    async with live.session.post(
        live.url + "/v1/outages", json={"adapter": "outbox"}, headers=headers
    ) as r:
        assert r.status == 403
    async with live.session.get(live.url + "/v1/outages?upcoming=3", headers=headers) as r:
        body = await r.json()
    assert r.status == 200
    assert body["outages"] == []
    assert len(body["calendars"]["ace-production"]["windows"]) == 3


async def test_outage_request_naming_neither_adapter_nor_environment_is_refused(
    tmp_path, live_gateway
):
    """422 names the problem; an unknown adapter is refused too."""
    live = await live_gateway(outage_config(tmp_path))
    assert (await live.call("POST", "/v1/outages", {"reason": "x"}))[0] == 422
    assert (await live.call("POST", "/v1/outages", {"adapter": "nope"}))[0] == 422
    assert (await live.call("DELETE", "/v1/outages/out_missing"))[0] == 404


def test_cli_outages_next_5_prints_ace_production_windows_in_eastern_and_utc(
    capsys, tmp_path, monkeypatch
):
    """`edi-gateway outages --next 5` on the shipped config: Eastern and UTC side by side."""
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    cfg = Path(__file__).resolve().parents[2] / "config" / "gateway.toml"
    saved = structlog.get_config()  # the CLI configures logging onto capsys's stderr
    try:
        code = cli.main(
            ["outages", "--next", "5", "--config", str(cfg), "--from", "2026-03-02T00:00:00Z"]
        )
    finally:
        structlog.configure(**saved)
    assert code == 0
    out = capsys.readouterr().out
    prod = out.split("ace-cert")[0].splitlines()
    assert prod[0].startswith("ace-production")
    assert prod[1:6] == [
        "  Tue 2026-03-03 05:00 EST → 07:00 EST     | Tue 2026-03-03 10:00Z → 12:00Z     probe",
        "  Thu 2026-03-05 05:00 EST → 07:00 EST     | Thu 2026-03-05 10:00Z → 12:00Z     probe",
        "  Sat 2026-03-07 22:00 EST → Sun 04:00 EDT | Sun 2026-03-08 03:00Z → 08:00Z     hold",
        "  Tue 2026-03-10 05:00 EDT → 07:00 EDT     | Tue 2026-03-10 09:00Z → 11:00Z     probe",
        "  Thu 2026-03-12 05:00 EDT → 07:00 EDT     | Thu 2026-03-12 09:00Z → 11:00Z     probe",
    ]
    assert "announced outages:" in out


async def test_http_503_without_retry_after_stays_transient_and_spends_an_attempt(
    tmp_path, live_gateway, ace_receiver
):
    """Only 503 *with* Retry-After is an outage; a bare 503 is retried with backoff."""
    data = outage_config(
        tmp_path,
        adapters={"ace": {"type": "http", "url": ace_receiver.url, "timeout": "5s"}},
        routes=[{"filing_types": ["*"], "adapters": ["ace"]}],
    )
    live = await live_gateway(data)
    ace_receiver.clock = live.clock
    ace_receiver.down_until = WEDNESDAY_NOON + timedelta(seconds=1)
    _, filing = await live.call("POST", "/v1/filings", event("BOL-1"))
    body = await live.wait_status(filing["id"], "retrying")
    assert body["deliveries"][0]["attempts"] == 1
    await live.advance(2)
    body = await live.wait_status(filing["id"], "delivered")
    assert body["deliveries"][0]["attempts"] == 2


async def test_an_outage_removed_while_a_cycle_reads_it_does_not_hold_until_its_recheck(
    tmp_path, live_gateway, monkeypatch
):
    """A dispatcher cycle that read the outage list just before a removal committed defers
    again what the removal had released, until the outage's recheck (an hour on). The next
    cycle sees the outage gone and releases it again: the filing goes out at once, not an
    hour later. (The stale read is injected; under load it happens on its own.)"""
    live = await live_gateway(outage_config(tmp_path))
    _, outage = await live.call("POST", "/v1/outages", {"environment": "production"})
    _, filing = await live.call("POST", "/v1/filings", event("BOL-1"))
    await live.wait_status(filing["id"], "deferred")
    store = live.gateway.store
    stale = await store.controls(now=live.clock.now())
    real = store.controls
    hold = {"stale": True}

    async def controls(*, now):
        return stale if hold["stale"] else await real(now=now)

    monkeypatch.setattr(store, "controls", controls)
    status, _ = await live.call("DELETE", f"/v1/outages/{outage['id']}")
    assert status == 200
    await live.advance(0)  # whole cycles on the stale list: deferred again for the recheck
    body = await live.wait_status(filing["id"], "deferred")
    recheck = datetime.fromisoformat(body["deliveries"][0]["next_attempt_at"])
    assert recheck - live.clock.now() > timedelta(minutes=30), body
    hold["stale"] = False
    await live.wait_status(filing["id"], "delivered", timeout=10)
