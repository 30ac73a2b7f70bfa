"""/openapi.json tells the truth (issue 19): every JSON answer of a running gateway validates
against the schema its operation declares, and a client generated from the spec by a tool
nobody here wrote (openapi-python-client) drives the gateway and gets typed objects back."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema_rs  # schemathesis's validator (dev extra): JSON Schema 2020-12, as in OAS 3.1
import pytest

from gateway import config
from tests.acks.conftest import SECRET_ENV, callbacks_section, eventually
from tests.conftest import base_config, example
from tests.inbound.conftest import TMS_SOURCE, booking, cloudevent
from tests.inbound.conftest import acme_entry_point as acme_entry_point  # the fixture

CE_ONE = {"Content-Type": "application/cloudevents+json"}
CE_BATCH = {"Content-Type": "application/cloudevents-batch+json"}

TOKEN = "truth-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def truth_config(tmp_path: Path, receiver_url: str, *, billing: bool = False) -> dict[str, Any]:
    """ISF to a filedrop outbox that expects acks; entries over HTTP to the test receiver;
    a directory source, and (``billing``) a source whose normalizer makes one filing per
    invoice entry (needs the acme entry point); callbacks to the receiver; one token."""
    host = receiver_url.split("/")[2]
    source = {**TMS_SOURCE, "kind": "directory", "directory": str(tmp_path / "drops"),
              "poll_interval": "50ms"}  # fmt: skip
    return base_config(
        tmp_path,
        adapters={
            "outbox": {"type": "filedrop", "directory": str(tmp_path / "outbox"), "fsync": False},
            "ace": {"type": "http", "url": receiver_url, "timeout": "5s"},
        },
        routes=[
            {"filing_types": ["isf"], "adapters": ["outbox"], "ack_within": "1h"},
            {"filing_types": ["entry"], "adapters": ["ace"]},
            {"filing_types": ["entry_summary"], "adapters": ["outbox"]},
        ],
        sources={
            "legacy": source,
            **(
                {"billing": {"types": ["com.acme.*"], "normalizer": "acme-billing"}}
                if billing
                else {}
            ),
        },
        callbacks=callbacks_section(host),
        auth={
            "mode": "token",
            "tokens": {
                "truth": {
                    "sha256": hashlib.sha256(TOKEN.encode()).hexdigest(),
                    "scopes": ["submit", "read", "operate", "admin"],
                }
            },
        },
    )


class SpecChecker:
    """Calls the gateway and validates each JSON answer against the declared schema."""

    def __init__(self, gw: Any, spec: dict[str, Any]) -> None:
        self.gw, self.spec = gw, spec
        self.checked: set[tuple[str, str]] = set()

    def schema(self, method: str, template: str, status: int) -> dict[str, Any]:
        op = self.spec["paths"][template][method]
        response = op["responses"].get(str(status))
        assert response is not None, f"{method.upper()} {template} answered {status}, undeclared"
        return dict(response["content"]["application/json"]["schema"])

    async def call(
        self, method: str, template: str, status: int, *, auth: bool = True, **kw: Any
    ) -> Any:
        path = template.format(**kw.pop("path", {}))
        headers = {**(AUTH if auth else {}), **kw.pop("headers", {})}
        async with self.gw.session.request(method, self.gw.url + path, headers=headers, **kw) as r:
            body = await r.json()
            assert r.status == status, (method, path, r.status, body)
        document = {**self.schema(method, template, status), "components": self.spec["components"]}
        validator = jsonschema_rs.Draft202012Validator(document, validate_formats=True)
        problems = [e.message for e in validator.iter_errors(body)]
        assert not problems, f"{method.upper()} {path} {status}: {problems[:3]}\n{str(body)[:600]}"
        self.checked.add((method, template))
        return body


async def reaches(gw: Any, filing_id: str, status: str) -> dict[str, Any]:
    """Poll the filing (with the token) until it has ``status``."""

    async def view() -> Any:
        body = (await gw.get(f"/v1/filings/{filing_id}", headers=AUTH))[1]
        return body if body["status"] == status else None

    return dict(await eventually(view))


def json_operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    """Every (method, path) whose success answer is JSON."""
    return {
        (method, path)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        for code, response in op["responses"].items()
        if code.startswith("2") and "application/json" in response.get("content", {})
    }


@pytest.mark.timeout(60)
async def test_every_json_answer_validates_against_the_schema_its_operation_declares(
    tmp_path, start_gateway, receiver, acme_entry_point
):
    """All JSON operations, on real state (SQLite, loopback HTTP): each 2xx and some 4xx
    bodies validate against the spec's own schemas; none is a bare object any more."""
    drops = tmp_path / "drops"
    drops.mkdir()
    (drops / "bad.json").write_text(json.dumps(booking(1, mode="barge")))
    receiver.script = [400]  # the first entry goes dead: something to retry
    data = truth_config(tmp_path, receiver.url, billing=True)
    gw = await start_gateway(
        data, environ=SECRET_ENV, reload_from=lambda: config.parse_config(data, SECRET_ENV)
    )
    spec = (await gw.get("/openapi.json"))[1]
    bare = [
        (m, p) for m, p in json_operations(spec) - {("get", "/openapi.json")}
        if next(
            r["content"]["application/json"]["schema"]
            for c, r in spec["paths"][p][m]["responses"].items() if c.startswith("2")
        ) == {"type": "object"}
    ]  # fmt: skip
    assert bare == []
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(spec)))
    assert refs and refs <= set(spec["components"]["schemas"])
    check = SpecChecker(gw, spec)
    get, post = "get", "post"

    # filings: an entry the receiver refuses (dead, then retried); ISF submitted (new,
    # duplicate), in a batch (accepted + rejected items); read and listed
    entry = await check.call(post, "/v1/filings", 202, json=example("entry"))
    await reaches(gw, entry["id"], "dead")
    isf = example(callback_url=receiver.url, reference="ISF-TRUTH-1")
    key = {"Idempotency-Key": "k1"}
    first = await check.call(post, "/v1/filings", 202, json=isf, headers=key)
    await check.call(post, "/v1/filings", 200, json=isf, headers=key)
    batch = [example(reference="ISF-TRUTH-2"), {"filing_type": "nope"}]
    result = await check.call(post, "/v1/filings/batch", 200, json=batch)
    assert [r["http_status"] for r in result["results"]] == [202, 422]
    second = result["results"][0]

    # CloudEvents: one invoice → two filings (SubmittedMany), and a CloudEvents batch
    def invoice(n: int, *entries: str) -> dict[str, Any]:
        data = {"invoice": f"INV-{n}", "entries": [{"entry_number": e} for e in entries]}
        return cloudevent(data, type="com.acme.billing.invoice.issued", source="/b", id=f"i{n}")

    many = await check.call(post, "/v1/filings", 202, json=invoice(1, "E-1", "E-2"), headers=CE_ONE)
    assert len(many["filings"]) == 2
    ce_batch = [invoice(2, "E-3"), invoice(3, "E-4", "E-5"), {"specversion": "1.0"}]
    result = await check.call(post, "/v1/filings/batch", 200, json=ce_batch, headers=CE_BATCH)
    assert [len(r.get("filings", [])) for r in result["results"]] == [0, 2, 0]
    assert [r["http_status"] for r in result["results"]][:2] == [202, 202]
    for fid in (first["id"], second["id"]):
        await reaches(gw, fid, "delivered")
    one, other = {"path": {"id": first["id"]}}, {"path": {"id": second["id"]}}
    await check.call(get, "/v1/filings/{id}", 200, **one)
    await check.call(get, "/v1/filings", 200, params={"status": "delivered", "limit": "5"})
    await check.call(post, "/v1/filings/{id}/retry", 200, path={"id": entry["id"]})

    # acks: one matched, a list of one unmatched; resend, then close-ack, the other filing
    dlv = first["deliveries"][0]["id"]
    ack = {"delivery_id": dlv, "outcome": "accepted"}
    assert (await check.call(post, "/v1/acks", 200, json=ack))["matched"] == 1
    unmatched = [{"delivery_id": "dlv_NOPE", "outcome": "rejected", "codes": ["S01"]}]
    assert (await check.call(post, "/v1/acks", 200, json=unmatched))["unmatched"] == 1
    await check.call(get, "/v1/acks", 200, params={"matched": "true"})
    await check.call(get, "/v1/filings/{id}/acks", 200, **one)
    await check.call(post, "/v1/filings/{id}/resend", 200, json={"reason": "no 997"}, **other)

    async def resent() -> bool:
        view = (await gw.get(f"/v1/filings/{second['id']}", headers=AUTH))[1]
        return view["status"] == "delivered" and view["deliveries"][0]["attempts"] == 2

    await eventually(resent)
    await check.call(post, "/v1/filings/{id}/close-ack", 200, json={"reason": "seen"}, **other)
    await reaches(gw, first["id"], "acknowledged")

    async def callbacks_sent() -> Any:
        q = {"filing_id": first["id"], "state": "delivered"}
        return (await gw.get("/v1/callbacks", params=q, headers=AUTH))[1]["items"]

    await eventually(callbacks_sent)
    await check.call(get, "/v1/callbacks", 200, params={"filing_id": first["id"]})
    await check.call(post, "/v1/callbacks/retry", 200, json={"dry_run": True})
    await check.call(get, "/v1/x12/gaps", 200, params={"older_than": "1m"})
    await check.call(post, "/v1/admin/reload", 200)  # the same file again: no change
    history = await check.call(get, "/v1/filings/{id}/history", 200, **one)
    assert {e["event"] for e in history["events"]} >= {"filing.accepted", "ack.received"}

    # the directory source's rejected file
    async def rejected() -> Any:
        return (await gw.get("/v1/rejected-events", headers=AUTH))[1]["items"]

    [bad] = await eventually(rejected)
    await check.call(get, "/v1/rejected-events", 200, params={"source": "legacy"})
    replay = {"json": {"reason": "x"}, "path": {"id": bad["id"]}}  # still bad: stays listed
    await check.call(post, "/v1/rejected-events/{id}/replay", 200, **replay)

    # outages: announce, list with calendar windows, a deferred filing cancelled, remove
    outage = await check.call(post, "/v1/outages", 201, json={"adapter": "outbox", "reason": "x"})
    await check.call(get, "/v1/outages", 200, params={"upcoming": "2"})
    held = await check.call(post, "/v1/filings", 202, json=example(reference="ISF-HELD"))
    await reaches(gw, held["id"], "deferred")
    dry = {"dry_run": True, "adapter": "outbox"}
    await check.call(post, "/v1/deliveries/cancel", 200, json=dry)
    await check.call(post, "/v1/deliveries/retry", 200, json=dry)
    await check.call(post, "/v1/filings/{id}/cancel", 200, path={"id": held["id"]})
    # pauses (issue 21): pause a type (shown in /v1/adapters and /readyz), list, resume
    pause = {"adapter": "outbox", "filing_type": "entry", "reason": "CSMS: stop entries"}
    paused = await check.call(post, "/v1/pauses", 201, json=pause)
    await check.call(get, "/v1/pauses", 200, params={"all": "true"})
    await check.call(get, "/v1/adapters", 200)
    await check.call(get, "/v1/overview", 200)
    await check.call("delete", "/v1/outages/{id}", 200, path={"id": outage["id"]})

    # records (issue 20): the archive is off here, so live records only
    await check.call(get, "/v1/records", 200, params={"reference": "ISF-TRUTH-1"})
    await check.call(get, "/v1/records/{id}", 200, **one)
    await check.call(post, "/v1/records/{id}/restore", 409, json={"reason": "x"}, **one)

    # health and the document itself
    ready = await check.call(get, "/readyz", 200, auth=False)
    assert ready["sources"]["legacy"]["rejected"] == 1
    await check.call(get, "/healthz", 200, auth=False)
    await check.call(get, "/livez", 200, auth=False)
    await check.call(get, "/openapi.json", 200, auth=False)
    await check.call("delete", "/v1/pauses/{id}", 200, path={"id": paused["id"]})

    # errors have the declared shape too
    await check.call(get, "/v1/filings/{id}", 404, path={"id": "fil_NOPE"})
    await check.call(post, "/v1/outages", 422, json={"reason": "neither adapter nor env"})
    await check.call(get, "/v1/adapters", 401, auth=False)
    assert check.checked == json_operations(spec)


def generate_client(spec: dict[str, Any], where: Path) -> Any:
    """Run openapi-python-client on the spec; import and return the generated package."""
    tool = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent))
    assert tool, "openapi-python-client (dev extra) is not installed"
    (where / "spec.json").write_text(json.dumps(spec))
    (where / "config.yaml").write_text("post_hooks: []\n")  # no ruff run over generated code
    out = subprocess.run(
        [tool, "generate", "--path", "spec.json", "--meta", "none", "--config", "config.yaml",
         "--output-path", "edigw_generated"],
        cwd=where, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    # its one complaint: a raw X12 upload (application/edi-x12) is no media type it can type
    said = out.stdout + out.stderr
    warnings = [line for line in said.splitlines() if line.startswith("WARNING")]
    assert warnings == ["WARNING parsing POST /v1/acks within default."], said
    assert "Unsupported content type application/edi-x12" in said
    sys.path.insert(0, str(where))
    try:
        return importlib.import_module("edigw_generated")
    finally:
        sys.path.remove(str(where))


@pytest.mark.timeout(60)
async def test_a_client_generated_from_the_spec_submits_reads_acks_and_announces_outages(
    tmp_path, start_gateway, receiver
):
    """openapi-python-client's client, generated from /openapi.json, gets typed objects
    (its attrs models, not dicts) for submit, status, acks and outages on a real gateway."""
    gw = await start_gateway(truth_config(tmp_path, receiver.url), environ=SECRET_ENV)
    spec = (await gw.get("/openapi.json"))[1]
    gen = await asyncio.to_thread(generate_client, spec, tmp_path)
    api = importlib.import_module("edigw_generated.api.default")
    m = importlib.import_module("edigw_generated.models")
    for name in ("post_v1_filings", "get_v1_filings_id", "post_v1_acks", "get_v1_filings_id_acks",
                 "post_v1_outages", "get_v1_outages", "delete_v1_outages_id", "get_v1_adapters",
                 "get_v1_filings_id_history"):  # fmt: skip
        importlib.import_module(f"{api.__name__}.{name}")
    client = gen.AuthenticatedClient(base_url=gw.url, token=TOKEN)
    async with client:
        event = m.FilingEvent.from_dict(example(reference="ISF-GEN-1"))
        sent = await api.post_v1_filings.asyncio_detailed(client=client, body=event)
        assert sent.status_code == 202 and isinstance(sent.parsed, m.Submitted)
        assert sent.parsed.status in (m.FilingStatus.PENDING, m.FilingStatus.IN_PROGRESS)
        fid = sent.parsed.id

        async def delivered() -> Any:
            view = await api.get_v1_filings_id.asyncio(fid, client=client)
            assert isinstance(view, m.FilingView)
            return view if view.status == m.FilingStatus.DELIVERED else None

        view = await eventually(delivered)
        [delivery] = view.deliveries
        assert isinstance(delivery, m.Delivery) and delivery.state == m.DeliveryState.DELIVERED
        assert delivery.attempts == 1 and delivery.delivered_at.tzinfo is not None

        ack = m.Ack(delivery_id=delivery.id, outcome=m.AckOutcome.ACCEPTED, codes=["A"])
        receipt = await api.post_v1_acks.asyncio(client=client, body=ack)
        assert isinstance(receipt, m.AckReceipt) and receipt.matched == 1
        assert isinstance(receipt.acks[0], m.AckRecord) and receipt.acks[0].filing_id == fid
        acks = await api.get_v1_filings_id_acks.asyncio(fid, client=client)
        assert isinstance(acks, m.FilingAcks) and [a.id for a in acks.items] == [receipt.acks[0].id]
        view = await api.get_v1_filings_id.asyncio(fid, client=client)
        assert view.status == m.FilingStatus.ACKNOWLEDGED
        history = await api.get_v1_filings_id_history.asyncio(fid, client=client)
        assert isinstance(history, m.History)
        assert "ack.received" in [e.event for e in history.events]

        request = m.OutageRequest(adapter="outbox", reason="ACE CERT down", reference="CSMS 1")
        outage = await api.post_v1_outages.asyncio(client=client, body=request)
        assert isinstance(outage, m.Outage) and outage.adapter == "outbox"
        listed = await api.get_v1_outages.asyncio(client=client, upcoming=1)
        assert isinstance(listed, m.OutageList) and [o.id for o in listed.outages] == [outage.id]
        windows = listed.calendars.additional_properties["ace-production"].windows
        assert isinstance(windows[0], m.CalendarWindow) and windows[0].end > windows[0].start
        adapters = await api.get_v1_adapters.asyncio(client=client)
        outbox = next(a for a in adapters.adapters if a.name == "outbox")
        assert isinstance(outbox, m.AdapterInfo) and outbox.gate.state == m.GateState.CLOSED
        removed = await api.delete_v1_outages_id.asyncio(outage.id, client=client)
        assert isinstance(removed, m.Outage) and removed.removed_at is not None
        missing = await api.get_v1_filings_id.asyncio_detailed("fil_NOPE", client=client)
        assert missing.status_code == 404 and isinstance(missing.parsed, m.Error)
        assert missing.parsed.error.code == "not_found"
