"""Redaction: importer numbers, configured paths and tokens never reach logs or audit details,
while the file that is delivered keeps the payload intact."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from audit_helpers import gateway_config
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import errors, logs, models, values
from gateway.audit import redact

SSN = "123-45-6789"
EIN = "12-3456789AB"
CBP = "260115-01234"
TAX_ID = "TX99887766"
TOKEN = "s3cr3t-token-abcdefghijklmnop"
SECRETS = (SSN, EIN, CBP, TAX_ID, TOKEN, "hunter2")


# --- the module ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"ior {SSN}", "ior ***-**-6789"),
        (f"ein {EIN}.", "ein **-*****89AB."),
        (f"cbp {CBP}", "cbp ******-*1234"),
        (f"ref ENTRY-{CBP}", "ref ENTRY-******-*1234"),
        (f"Authorization: Bearer {TOKEN}", "Authorization: Bearer ******-*****-************mnop"),
        ("postgresql://edigw:hunter2@db:5432/gw", "postgresql://edigw:***@db:5432/gw"),
        ("password=hunter2 next", "password=*** next"),
    ],
)
def test_text_masks_importer_numbers_and_secrets_keeping_the_last_four(text, expected):
    """SSN, EIN+suffix, CBP-assigned numbers, bearer tokens, DSN passwords are masked."""
    assert redact.Redactor().text(text) == expected


@pytest.mark.parametrize(
    "text", ["2026-01-06T12:00:00Z", "call 555-123-4567", "1-123-45-6789-0", "HTS 8471.30.0100"]
)
def test_text_leaves_dates_phones_and_longer_numbers_alone(text):
    """Shapes that are not importer numbers stay readable."""
    assert redact.Redactor().text(text) == text


def _text_by_every_pattern(value: str) -> str:
    """Redactor.text without its shortcuts: all four substitutions, always."""
    out = redact._IMPORTER_NUMBER.sub(lambda m: redact.mask(m.group(0)), value)
    out = redact._AUTH_SCHEME.sub(
        lambda m: f"{m.group(1)}{m.group(2)}{redact.mask(m.group(3))}", out
    )
    out = redact._URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{redact.MASK}@", out)
    return redact._KEY_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{redact.MASK}", out)


_PIECES = st.sampled_from(
    [
        "123-45-6789",
        "12-3456789",
        "12-3456789AB",
        "123456-12345",
        "Bearer ",
        "bearer ",
        "BEARER ",
        "Basic ",
        "abcdefgh12345678",
        "postgresql://",
        "user:pw@",
        "password=",
        "Token: ",
        "api-key=",
        "HMAC_KEY:",
        "secret",
        "2026-11-27T03:20:20Z",
        " ",
        "-",
        ":",
        "=",
        "@",
        "x",
        "9",
        "é",
        "\t",
        "\n",
    ]
)


@settings(max_examples=600)
@given(st.lists(_PIECES | st.text(max_size=6), max_size=8).map("".join))
def test_text_shortcuts_never_change_what_is_masked(value: str) -> None:
    """The cheap pre-checks in Redactor.text only skip patterns that cannot match."""
    assert redact.Redactor().text(value) == _text_by_every_pattern(value)


def test_nested_values_secret_keys_and_configured_paths_are_masked():
    """Strings deep in dicts/lists, secret-named keys and configured paths (at any depth)."""
    r = redact.Redactor(["payload.importer.tax_id", "payload.parties.*.account"])
    value = {
        "filing": {
            "payload": {
                "importer": {"tax_id": TAX_ID, "name": "Acme"},
                "parties": [{"p1": {"account": 12345678}}, {"notes": [f"ssn {SSN}"]}],
            }
        },
        "headers": {"Authorization": f"Bearer {TOKEN}", "X-Api-Key": "k" * 20},
        "options": {"password": "hunter2", "user": "edigw"},
    }
    out = r.value(value)
    text = json.dumps(out)
    for secret in (*SECRETS, "k" * 20):
        assert secret not in text
    assert out["filing"]["payload"]["importer"] == {"tax_id": "******7766", "name": "Acme"}
    assert out["filing"]["payload"]["parties"][0]["p1"]["account"] == "***"
    assert out["options"] == {"password": "***", "user": "edigw"}
    assert value["filing"]["payload"]["importer"]["tax_id"] == TAX_ID  # input untouched


# --- end to end ---------------------------------------------------------------------------


class FlakyFiledrop:
    """Fails once with an error echoing sensitive data, then writes the body to a file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.calls = 0

    async def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        pass

    async def check(self) -> models.Health:
        return models.Health(ok=True)

    async def send(self, message: models.OutboundMessage) -> models.Receipt:
        self.calls += 1
        if self.calls == 1:
            raise errors.TransientError(
                f"receiver rejected importer {SSN} / {EIN} / {CBP}; we sent "
                f"Authorization: Bearer {TOKEN} via postgresql://gw:hunter2@db/x"
            )
        (self.directory / f"{message.delivery_id}.json").write_bytes(message.body)
        return models.Receipt(status="ok")


@pytest.fixture
def captured_logs() -> Any:
    """Logs as JSON lines into a buffer, configured as `serve` does (with redact paths)."""
    stream = io.StringIO()
    logs.configure(
        "json", "debug", stream=stream, redactor=redact.Redactor(["payload.importer.tax_id"])
    )
    yield stream
    structlog.reset_defaults()


def event() -> dict[str, Any]:
    return {
        "filing_type": "isf",
        "environment": "cert",
        "reference": f"ISF-{CBP}",
        "filer_code": "XYZ",
        "payload": {
            "importer": {"name": "Acme", "ssn": SSN, "ein": EIN, "tax_id": TAX_ID},
            "bill_of_lading": "MAEU123456789",
        },
        "metadata": {"note": f"IOR {SSN}"},
    }


async def test_sensitive_values_never_reach_logs_or_audit_but_the_delivered_file_is_intact(
    tmp_path, run_gateway, captured_logs, monkeypatch
):
    """Submit → fail once (error echoes secrets) → deliver: logs/audit masked, file intact."""
    monkeypatch.setenv("EDIGW_TEST_TOKEN", TOKEN)
    data = gateway_config(tmp_path, redact_paths=["payload.importer.tax_id"], hmac_key="k" * 32)
    data["auth"] = {
        "mode": "token",
        "tokens": {"ci": {"secret_env": "EDIGW_TEST_TOKEN", "scopes": ["submit", "read"]}},
    }
    data["retry"] = {"initial_delay": "10ms", "max_delay": "50ms", "jitter": "0s"}
    adapter = FlakyFiledrop(tmp_path / "outbox")
    gw, stop = await run_gateway(data, adapters={"outbox": adapter})
    url = f"http://127.0.0.1:{gw.port}"
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Request-ID": "req-redact-1"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(url + "/v1/filings", json=event()) as r:
            assert r.status == 202, await r.text()
            filing_id = (await r.json())["id"]
        for _ in range(300):
            async with session.get(f"{url}/v1/filings/{filing_id}") as r:
                if (await r.json())["status"] == "delivered":
                    break
            await asyncio.sleep(0.02)
        async with session.get(f"{url}/v1/filings/{filing_id}/history") as r:
            history = json.dumps(await r.json())
    # a log line and an audit row that carry a configured path, through the real pipeline
    structlog.get_logger("test").info("debug.filing", filing={"payload": event()["payload"]})
    await gw.store.append_audit(
        "test.note",
        actor=values.SYSTEM,
        now=gw.clock.now(),
        details={"payload": event()["payload"]},
    )
    await stop()

    log_text = captured_logs.getvalue()
    conn = sqlite3.connect(tmp_path / "gateway.db")
    audit_text = "\n".join(r[0] for r in conn.execute("SELECT event || ' ' || details FROM audit"))
    conn.close()
    assert "delivery.retry_scheduled" in log_text
    assert "***-**-6789" in log_text
    assert "delivery.retry_scheduled" in audit_text
    assert "***-**-6789" in audit_text
    for secret in SECRETS:
        assert secret not in log_text, secret
        assert secret not in audit_text, secret
        assert secret not in history, secret
    assert hashlib.sha256(TOKEN.encode()).hexdigest() not in log_text

    [delivered] = (tmp_path / "outbox").glob("*.json")
    payload = json.loads(delivered.read_bytes())
    assert payload["payload"]["importer"] == event()["payload"]["importer"]


async def test_request_id_is_on_every_log_line_of_the_request_and_in_its_audit_rows(
    tmp_path, run_gateway, captured_logs
):
    """X-Request-ID is bound to the request's log lines and recorded in its audit rows."""
    gw, stop = await run_gateway(gateway_config(tmp_path, hmac_key="k" * 32))
    url = f"http://127.0.0.1:{gw.port}"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/v1/filings", json=event(), headers={"X-Request-ID": "req-77"}) as r,
    ):
        assert r.headers["X-Request-ID"] == "req-77"
        filing_id = (await r.json())["id"]
    await stop()
    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    accepted = [e for e in lines if e["event"] == "filing.accepted"]
    assert accepted
    assert all(e["request_id"] == "req-77" for e in accepted)
    conn = sqlite3.connect(tmp_path / "gateway.db")
    rows = conn.execute(
        "SELECT event, details FROM audit WHERE filing_id = ? AND actor != 'system'", (filing_id,)
    ).fetchall()
    conn.close()
    assert {e for e, _ in rows} >= {"filing.accepted", "delivery.pending"}
    assert all(json.loads(d)["request_id"] == "req-77" for _, d in rows)
