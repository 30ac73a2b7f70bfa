"""Normalizers: the declarative mapping, a code normalizer by entry point, the dry run."""

from __future__ import annotations

import json

import pytest

from gateway import config, errors, models
from gateway.cli import main as cli
from gateway.inbound import mapping
from gateway.inbound.normalizers import EventContext, Sources
from tests.conftest import base_config
from tests.inbound.conftest import TMS_SOURCE, booking, cloudevent, filings
from tests.test_process import write_toml

STRUCTURED = {"Content-Type": "application/cloudevents+json"}
BILLING = {"types": ["com.acme.billing.*"], "normalizer": "acme-billing"}


def tms() -> mapping.DeclarativeMapping:
    return mapping.DeclarativeMapping(
        paths=TMS_SOURCE["map"],
        constants=TMS_SOURCE["constants"],
        filing_types=TMS_SOURCE["filing_types"],
    )


def test_declarative_mapping_fills_fields_constants_metadata_and_looks_up_the_type():
    """Paths, a constant, a metadata entry and the filing_types table make one FilingEvent."""
    event = tms()(booking(5, mode="air"))
    assert event == models.FilingEvent(
        filing_type="manifest.air",
        environment="cert",
        reference="MAEU5",
        filer_code="XYZ",
        payload=booking(5, mode="air")["booking"],
        metadata={"booking_id": "BK-5"},
    )


@pytest.mark.parametrize(
    ("event", "loc"),
    [
        ({"booking": {"mode": "ocean", "filer": "XYZ", "id": "1"}}, "data.booking.bill_of_lading"),
        (booking(1, mode="barge"), "data.booking.mode"),
        (booking(1, bill_of_lading=""), "data.booking.bill_of_lading"),
        (booking(1, filer="no spaces"), "data.booking.filer"),
        (["not", "an", "object"], "data"),
    ],
    ids=["missing-path", "not-in-table", "empty-reference", "bad-filer-code", "not-an-object"],
)
def test_declarative_mapping_errors_name_the_source_field(event, loc):
    """Every mapping failure is InvalidInput whose first detail is the path in the event."""
    with pytest.raises(errors.InvalidInput) as caught:
        tms()(event)
    assert caught.value.details[0]["loc"] == loc


def test_code_normalizer_loads_by_entry_point_and_returns_several_filings(acme_entry_point):
    """`normalizer = "acme-billing"` resolves through group edi_gateway.normalizers."""
    cfg = config.parse_config(base_config(acme_entry_point, sources={"billing": BILLING}))
    source = Sources(cfg).get("billing")
    out = source.normalize(
        {"invoice": "INV-1", "entries": [{"entry_number": "E-1"}, {"entry_number": "E-2"}]},
        EventContext(source="billing", event_type="com.acme.billing.invoice.issued"),
    )
    assert [(e.filing_type, e.reference) for e in out] == [
        ("entry_summary", "E-1"),
        ("entry_summary", "E-2"),
    ]
    assert out[0].metadata["ce_type"] == "com.acme.billing.invoice.issued"
    with pytest.raises(errors.InvalidEvent) as caught:
        source.normalize({"entries": [{}]}, EventContext(source="billing"))
    assert caught.value.details[0]["loc"] == "data.entries.0.entry_number"


def test_unknown_normalizer_is_a_config_error_naming_the_key(tmp_path):
    """A normalizer that neither imports nor is an entry point fails at start-up."""
    for ref in ("no-such-normalizer", "tests.inbound.acme_normalizers:nope"):
        data = base_config(tmp_path, sources={"x": {"types": ["t"], "normalizer": ref}})
        with pytest.raises(errors.ConfigError) as caught:
            Sources(config.parse_config(data))
        assert caught.value.key == "sources.x.normalizer"


async def test_code_normalizer_over_http_files_every_filing_with_derived_keys(
    tmp_path, start_gateway, acme_entry_point
):
    """One billing CloudEvent → two filings keyed id+source/N; resent → the same two."""
    gw = await start_gateway(base_config(tmp_path, sources={"billing": BILLING}))
    event = cloudevent(
        {"invoice": "INV-9", "entries": [{"entry_number": "E-1"}, {"entry_number": "E-2"}]},
        type="com.acme.billing.invoice.issued",
        source="/billing",
        id="inv-9",
    )
    for expected in (202, 200):
        async with gw.session.post(
            gw.url + "/v1/filings", data=json.dumps(event), headers=STRUCTURED
        ) as r:
            body = await r.json()
            assert r.status == expected, body
    assert len(body["filings"]) == 2
    rows = filings(tmp_path / "gateway.db")
    assert [r["idempotency_key"] for r in rows] == ["ce:/billing#inv-9/0", "ce:/billing#inv-9/1"]
    async with gw.session.post(
        gw.url + "/v1/filings",
        data=json.dumps({**event, "id": "inv-10", "data": {"entries": [{}]}}),
        headers=STRUCTURED,
    ) as r:
        assert r.status == 422
        assert (await r.json())["error"]["details"][0]["loc"] == "data.entries.0.entry_number"


def test_normalize_dry_run_prints_the_filing_and_stores_nothing(tmp_path, capsys):
    """`edi-gateway normalize --source tms FILE` prints the ISF and its route; no database."""
    cfg = write_toml(tmp_path / "gw.toml", base_config(tmp_path, sources={"tms": TMS_SOURCE}))
    plain = tmp_path / "booking.json"
    plain.write_text(json.dumps(booking(3)))
    assert cli.main(["normalize", "--source", "tms", str(plain), "--config", str(cfg)]) == 0
    out = json.loads(capsys.readouterr().out)
    [filing] = out["filings"]
    assert (filing["filing_type"], filing["reference"], filing["adapters"]) == (
        "isf",
        "MAEU3",
        ["outbox"],
    )
    assert out["stored"] is False
    wrapped = tmp_path / "event.json"
    wrapped.write_text(json.dumps(cloudevent(booking(4, mode="air"), id="ce-4")))
    assert cli.main(["normalize", "--source", "tms", str(wrapped), "--config", str(cfg)]) == 0
    [filing] = json.loads(capsys.readouterr().out)["filings"]
    assert (filing["filing_type"], filing["idempotency_key"]) == ("manifest.air", "ce:/tms/eu#ce-4")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(booking(5, mode="barge")))
    assert cli.main(["normalize", "--source", "tms", str(bad), "--config", str(cfg)]) == 4
    assert "data.booking.mode" in capsys.readouterr().err
    assert not (tmp_path / "gateway.db").exists()
    assert not (tmp_path / "outbox").exists()
