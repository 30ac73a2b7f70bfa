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
    """application/cloudevents-batch+json: good events are filed, a bad one is its own error."""
    gw = await start_gateway(config(tmp_path))
    batch = [
        cloudevent(booking(1), id="e1"),
        cloudevent(booking(2, mode="rail"), id="e2"),
        cloudevent(booking(3, mode="air"), id="e3"),
        {"specversion": "1.0", "id": "e4", "type": "com.acme.tms.shipment.booked"},
    ]
    status, body = await post_raw(gw, "/v1/filings/batch", batch, BATCH)
    assert status == 200, body
    assert [r["http_status"] for r in body["results"]] == [202, 422, 202, 400]
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
        ({"specversion": "1.0", "id": "x", "type": "t"}, STRUCTURED, 400, "source"),
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
        (b"{}", {"ce-specversion": "1.0", "ce-id": "1", "ce-type": "t"}, 400, "header.ce-source"),
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


# --- the spec's own examples (tests/data/cloudevents, CloudEvents v1.0.2) ----------------

from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

from gateway import errors  # noqa: E402
from gateway.inbound import cloudevents  # noqa: E402

SPEC = Path(__file__).parent.parent / "data" / "cloudevents"
#: files the spec's example types as ISFs, the reference from `data.appinfoA`
SPEC_SOURCE = {
    "types": ["com.example.someevent", "com.example.someotherevent"],
    "map": {"reference": "appinfoA", "payload": "$"},
    "constants": {"environment": "cert", "filing_type": "isf", "filer_code": "XYZ"},
}


def spec_json(name: str):
    return json.loads((SPEC / name).read_text())


def spec_binary(name: str) -> tuple[dict[str, str], bytes]:
    """An example "re-encoded using HTTP Binary Content Mode": header lines, blank, body."""
    head, _, body = (SPEC / name).read_text().partition("\n\n")
    headers = dict(line.split(": ", 1) for line in head.splitlines())
    return headers, body.strip().encode()


def spec_config(tmp_path):
    return base_config(tmp_path, sources={"spec": SPEC_SOURCE})


async def test_spec_example_with_null_subject_files_once(tmp_path, start_gateway):
    """json-format §3.2 C234 (`"subject": null`): 202, then 200 with the same filing."""
    gw = await start_gateway(spec_config(tmp_path))
    example = spec_json("json-format-3.2-json-data.json")
    assert example["subject"] is None
    first_status, first = await post_raw(gw, "/v1/filings", example, STRUCTURED)
    again_status, again = await post_raw(gw, "/v1/filings", example, STRUCTURED)
    assert (first_status, again_status) == (202, 200), first
    assert again["id"] == first["id"]
    [row] = filings(tmp_path / "gateway.db")
    assert (row["reference"], row["source_event_id"]) == ("abc", "C234-1234-1234")
    assert row["idempotency_key"] == "ce:/mycontext#C234-1234-1234"


async def test_spec_binary_mode_example_files_the_same_event(tmp_path, start_gateway):
    """C234 re-encoded in HTTP binary mode (the spec's headers and body) → the same key."""
    gw = await start_gateway(spec_config(tmp_path))
    headers, body = spec_binary("json-format-3.2-json-data.http-binary.txt")
    status, answer = await post_raw(gw, "/v1/filings", body, headers)
    assert status == 202, answer
    again, _ = await post_raw(gw, "/v1/filings", spec_json("json-format-3.2-json-data.json"),
                              STRUCTURED)  # fmt: skip
    assert again == 200  # structured and binary forms of one event are one filing
    [row] = filings(tmp_path / "gateway.db")
    assert row["idempotency_key"] == "ce:/mycontext#C234-1234-1234"


@pytest.mark.parametrize(
    "name", ["json-format-3.2-xml-data.json", "json-format-3.2-string-data.json"]
)
def test_spec_examples_with_null_optional_attributes_read_as_absent(name):
    """B234 (`"unsetextension": null`) and D234 (`"subject": null`): read, nulls absent."""
    envelope = cloudevents.from_document(spec_json(name))
    assert envelope.subject is None and "unsetextension" not in envelope.extensions
    assert envelope.extensions["comexampleextension1"] == "value"
    assert envelope.time == datetime(2018, 4, 5, 17, 31, tzinfo=UTC)


@pytest.mark.parametrize(
    "name",
    [
        "json-format-3.2-xml-data.http-binary.txt",
        "json-format-3.2-string-data.http-binary.txt",
        "json-format-3.2-json-data.http-binary.txt",
    ],
)
def test_spec_binary_examples_read_like_their_structured_twins(name):
    """Each binary-mode example reads to the attributes and data of its JSON example."""
    headers, body = spec_binary(name)
    binary = cloudevents.from_http(headers, body)
    twin = cloudevents.from_document(spec_json(name.replace(".http-binary.txt", ".json")))
    assert (binary.id, binary.source, binary.type, binary.time, binary.data) == (
        twin.id,
        twin.source,
        twin.type,
        twin.time,
        twin.data,
    )


async def test_spec_batch_example_and_the_empty_batch(tmp_path, start_gateway):
    """§4.3: the batch files its JSON event (the placeholder base64 is a 422 naming it);
    the empty batch `[]` is a 200 with no items."""
    gw = await start_gateway(spec_config(tmp_path))
    status, body = await post_raw(gw, "/v1/filings/batch", spec_json("json-format-4.3-batch.json"),
                                  BATCH)  # fmt: skip
    assert status == 200, body
    assert [r["http_status"] for r in body["results"]] == [422, 202]
    assert body["results"][0]["error"]["details"][0]["loc"] == "[0].data_base64"
    empty = (SPEC / "json-format-4.3-empty-batch.json").read_bytes()
    status, body = await post_raw(gw, "/v1/filings/batch", empty, BATCH)
    assert (status, body) == (200, {"accepted": 0, "rejected": 0, "results": []})
    assert [r["source_event_id"] for r in filings(tmp_path / "gateway.db")] == ["C234-1234-1234"]


@pytest.mark.parametrize("attr", ["id", "source", "specversion", "type"])
async def test_missing_required_attribute_is_400_naming_it_and_never_invented(
    tmp_path, start_gateway, attr
):
    """C234 without a REQUIRED attribute: 400 naming it, structured, binary and in a batch;
    sent twice, nothing is filed (no invented id turning each resend into a new filing)."""
    gw = await start_gateway(spec_config(tmp_path))
    example = {k: v for k, v in spec_json("json-format-3.2-json-data.json").items() if k != attr}
    headers, body = spec_binary("json-format-3.2-json-data.http-binary.txt")
    headers = {k: v for k, v in headers.items() if k != f"ce-{attr}"}
    for _ in range(2):
        status, answer = await post_raw(gw, "/v1/filings", example, STRUCTURED)
        assert (status, answer["error"]["details"][0]["loc"]) == (400, attr), answer
        status, answer = await post_raw(gw, "/v1/filings", body, headers)
        assert (status, answer["error"]["details"][0]["loc"]) == (400, f"header.ce-{attr}")
    _, batch = await post_raw(gw, "/v1/filings/batch", [example], BATCH)
    assert batch["results"][0]["http_status"] == 400
    assert batch["results"][0]["error"]["details"][0]["loc"] == f"[0].{attr}"
    assert filings(tmp_path / "gateway.db") == []


def _amqp_example() -> tuple[dict[str, str], str]:
    """The AMQP binding's §3.1.4 application properties, and its content type."""
    text = (SPEC / "amqp-binding-3.1.4-binary.txt").read_text()
    props = {}
    for line in text.splitlines():
        if line.startswith(("cloudEvents:", "content-type:")):
            key, _, value = line.rpartition(": ")
            props[key] = value
    return {k: v for k, v in props.items() if k != "content-type"}, props["content-type"]


C234_DATA = {"appinfoA": "abc", "appinfoB": 123, "appinfoC": True}


@pytest.mark.parametrize("prefix", ["cloudEvents:", "cloudEvents_", "ce-", "ce_"])
def test_amqp_binding_example_reads_with_every_prefix(prefix):
    """§3.1.4's properties under each prefix a producer uses, values as a consumer sees them."""
    props, content_type = _amqp_example()
    headers = {prefix + k.removeprefix("cloudEvents:"): v.encode() for k, v in props.items()}
    envelope = cloudevents.from_amqp(headers, content_type, json.dumps(C234_DATA).encode())
    assert envelope is not None
    assert (envelope.id, envelope.source, envelope.type) == (
        "1234-1234-1234",
        "/mycontext/subcontext",
        "com.example.someevent",
    )
    assert envelope.time == datetime(2018, 4, 5, 3, 56, 24, tzinfo=UTC)
    assert envelope.data == C234_DATA


def test_amqp_native_timestamps_and_a_missing_id():
    """`time` as an AMQP timestamp (epoch ms, or a datetime) reads, an absent one stays
    absent (not the SDK's "now"); no `id` is a 400."""
    props, content_type = _amqp_example()
    at = datetime(2018, 4, 5, 3, 56, 24, tzinfo=UTC)
    for native in (int(at.timestamp() * 1000), at.replace(tzinfo=None)):
        headers = {**props, "cloudEvents:time": native}
        envelope = cloudevents.from_amqp(headers, content_type, b"{}")
        assert envelope is not None and envelope.time == at
    untimed = {k: v for k, v in props.items() if k != "cloudEvents:time"}
    envelope = cloudevents.from_amqp(untimed, content_type, b"{}")
    assert envelope is not None and envelope.time is None
    without_id = {k: v for k, v in props.items() if k != "cloudEvents:id"}
    with pytest.raises(errors.MalformedInput) as caught:
        cloudevents.from_amqp(without_id, content_type, b"{}")
    assert caught.value.details == [{"loc": "header.cloudEvents:id", "msg": "required"}]


async def test_events_made_by_the_python_sdk_http_binding_file_once(tmp_path, start_gateway):
    """The CloudEvents SDK's `to_binary` (percent-encoded headers) and `to_structured` of one
    event: the first files it, the second is the same filing; the subject arrives decoded."""
    from cloudevents.core.bindings import http as ce_http
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent

    gw = await start_gateway(config(tmp_path))
    event = CloudEvent(
        {"type": "com.acme.tms.shipment.booked", "source": "/tms/eu", "id": "sdk-1",
         "subject": "BL MAEU1 \"ocean\" 100%", "datacontenttype": "application/json"},
        booking(1),
    )  # fmt: skip
    binary = ce_http.to_binary(event, JSONFormat())
    assert "%" in binary.headers["ce-subject"]  # the SDK percent-encodes, as the binding says
    structured = ce_http.to_structured(event, JSONFormat())
    first, created = await post_raw(gw, "/v1/filings", binary.body, binary.headers)
    again, same = await post_raw(gw, "/v1/filings", structured.body, structured.headers)
    assert (first, again) == (202, 200), created
    assert same["id"] == created["id"]
    envelope = cloudevents.from_http(binary.headers, binary.body)
    assert envelope.subject == 'BL MAEU1 "ocean" 100%'
    [row] = filings(tmp_path / "gateway.db")
    assert row["idempotency_key"] == "ce:/tms/eu#sdk-1"
