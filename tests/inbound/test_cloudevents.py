"""CloudEvents 1.0 on the filing endpoints: structured, binary, batch, idempotency, errors."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.conftest import base_config
from tests.inbound.conftest import TMS_SOURCE, booking, cloudevent, filings

STRUCTURED = {"Content-Type": "application/cloudevents+json"}
BATCH = {"Content-Type": "application/cloudevents-batch+json"}


def config(tmp_path, **sources):
    return base_config(tmp_path, sources={"tms": TMS_SOURCE, **sources})


async def post_raw(gw, path, body, headers):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with gw.session.post(gw.url + path, data=data, headers=headers) as r:
        return r.status, await r.json()


async def test_structured_cloudevent_becomes_a_filing_of_the_mapped_type(tmp_path, start_gateway):
    """application/cloudevents+json: `type` picks the TMS mapping; mode ocean → an ISF."""
    gw = await start_gateway(config(tmp_path))
    status, body = await post_raw(gw, "/v1/filings", cloudevent(booking(7)), STRUCTURED)
    assert status == 202, body
    [row] = filings(tmp_path / "gateway.db")
    assert (row["id"], row["filing_type"], row["reference"]) == (body["id"], "isf", "MAEU7")
    assert json.loads(row["metadata"]) == {"booking_id": "BK-7"}
    assert row["idempotency_key"] == "ce:/tms/eu#evt-1"


async def test_binary_cloudevent_becomes_a_filing_of_the_mapped_type(tmp_path, start_gateway):
    """ce-* headers and the internal event as the body; mode air → manifest.air."""
    gw = await start_gateway(config(tmp_path))
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "b-1",
        "ce-source": "/tms/us",
        "ce-type": "com.acme.tms.shipment.booked",
        "ce-time": "2026-11-02T10:00:00Z",
        "Content-Type": "application/json",
    }
    status, body = await post_raw(gw, "/v1/filings", booking(8, mode="air"), headers)
    assert status == 202, body
    [row] = filings(tmp_path / "gateway.db")
    assert (row["filing_type"], row["reference"]) == ("manifest.air", "MAEU8")
    assert (row["source"], row["source_event_id"]) == ("cloudevents:/tms/us", "b-1")


async def test_cloudevent_batch_gives_per_event_results_in_order(tmp_path, start_gateway):
    """application/cloudevents-batch+json: good events are filed, a bad one is its own 422."""
    gw = await start_gateway(config(tmp_path))
    batch = [
        cloudevent(booking(1), id="e1"),
        cloudevent(booking(2, mode="rail"), id="e2"),
        cloudevent(booking(3, mode="air"), id="e3"),
        {"specversion": "1.0", "id": "e4", "type": "com.acme.tms.shipment.booked"},
    ]
    status, body = await post_raw(gw, "/v1/filings/batch", batch, BATCH)
    assert status == 200, body
    assert [r["http_status"] for r in body["results"]] == [202, 422, 202, 422]
    assert body["results"][1]["error"]["details"][0]["loc"] == "data.booking.mode"
    assert body["results"][3]["error"]["details"][0]["loc"] == "[3].source"
    rows = filings(tmp_path / "gateway.db")
    assert [(r["source_event_id"], r["filing_type"]) for r in rows] == [
        ("e1", "isf"),
        ("e3", "manifest.air"),
    ]


async def test_resent_cloudevent_with_same_id_and_source_returns_the_same_filing(
    tmp_path, start_gateway
):
    """Same id+source → 200 and the first filing; the same id from another source is new."""
    gw = await start_gateway(config(tmp_path))
    first_status, first = await post_raw(gw, "/v1/filings", cloudevent(booking(1)), STRUCTURED)
    again_status, again = await post_raw(gw, "/v1/filings", cloudevent(booking(1)), STRUCTURED)
    other_status, other = await post_raw(
        gw, "/v1/filings", cloudevent(booking(1), source="/tms/asia"), STRUCTURED
    )
    assert (first_status, again_status, other_status) == (202, 200, 202)
    assert again["id"] == first["id"] and again["created"] is False
    assert other["id"] != first["id"]
    _, batch = await post_raw(gw, "/v1/filings/batch", [cloudevent(booking(1))], BATCH)
    assert batch["results"][0]["id"] == first["id"] and batch["results"][0]["http_status"] == 200
    assert len(filings(tmp_path / "gateway.db")) == 2


async def test_idempotency_key_header_wins_over_the_cloudevent_id(tmp_path, start_gateway):
    """An Idempotency-Key given with the CloudEvent is the key the filing keeps."""
    gw = await start_gateway(config(tmp_path))
    status, _ = await post_raw(
        gw, "/v1/filings", cloudevent(booking(1)), {**STRUCTURED, "Idempotency-Key": "mine-1"}
    )
    assert status == 202
    assert [r["idempotency_key"] for r in filings(tmp_path / "gateway.db")] == ["mine-1"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "loc"),
    [
        (b"{not json", STRUCTURED, 400, None),
        ([1, 2], STRUCTURED, 422, "body"),
        ({"specversion": "1.0", "id": "x", "type": "t"}, STRUCTURED, 422, "source"),
        (cloudevent({}, specversion="0.3"), STRUCTURED, 422, "specversion"),
        (cloudevent({}, time="yesterday"), STRUCTURED, 422, "time"),
        (cloudevent({}, id=7), STRUCTURED, 422, "id"),
        (cloudevent({}, type="com.other.thing"), STRUCTURED, 422, "type"),
        (
            cloudevent({"booking": {"mode": "ocean"}}),
            STRUCTURED,
            422,
            "data.booking.bill_of_lading",
        ),
        (cloudevent(booking(1, filer="!bad")), STRUCTURED, 422, "data.booking.filer"),
        (b"{}", {"ce-specversion": "1.0", "ce-id": "1", "ce-type": "t"}, 422, "header.ce-source"),
        (cloudevent(booking(1)), BATCH, 400, "header.Content-Type"),
    ],
    ids=[
        "not-json",
        "not-object",
        "no-source",
        "spec-0.3",
        "bad-time",
        "id-not-string",
        "unknown-type",
        "missing-mapped-field",
        "invalid-mapped-value",
        "binary-no-source",
        "batch-on-single",
    ],
)
async def test_bad_cloudevents_are_400_or_422_naming_the_field(
    tmp_path, start_gateway, body, headers, status, loc
):
    """Malformed or invalid CloudEvents never reach the store and never cause a 500."""
    gw = await start_gateway(config(tmp_path))
    got, answer = await post_raw(gw, "/v1/filings", body, headers)
    assert got == status, answer
    if loc is not None:
        assert answer["error"]["details"][0]["loc"] == loc, answer
    assert filings(tmp_path / "gateway.db") == []


async def test_provenance_is_on_the_filing_and_in_the_audit_trail(tmp_path, start_gateway):
    """GET /v1/filings/{id} shows source + source_event_id; filing.accepted records both."""
    gw = await start_gateway(config(tmp_path))
    _, body = await post_raw(gw, "/v1/filings", cloudevent(booking(1), id="prov-1"), STRUCTURED)
    _, view = await gw.get(f"/v1/filings/{body['id']}")
    assert (view["source"], view["source_event_id"]) == ("cloudevents:/tms/eu", "prov-1")
    plain = {"filing_type": "isf", "environment": "cert", "reference": "R-1", "filer_code": "XYZ"}
    status, _ = await gw.post("/v1/filings", {**plain, "payload": {"a": 1}})
    assert status == 202
    with sqlite3.connect(tmp_path / "gateway.db") as conn:
        details = [
            json.loads(d)
            for (d,) in conn.execute(
                "SELECT details FROM audit WHERE event = 'filing.accepted' ORDER BY seq"
            )
        ]
    assert [(d["source"], d["source_event_id"]) for d in details] == [
        ("cloudevents:/tms/eu", "prov-1"),
        ("api:local", None),
    ]
