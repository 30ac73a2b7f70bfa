"""Issue 22 on the CloudEvents road: a token limited to filer codes and the intake quotas
see the filings a CloudEvent maps to, single and batch."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tests.conftest import base_config
from tests.inbound.conftest import TMS_SOURCE, booking, cloudevent

SECRET = "ce-filer-token-0123456789"
STRUCTURED = {"Content-Type": "application/cloudevents+json", "Authorization": f"Bearer {SECRET}"}
BATCH = {**STRUCTURED, "Content-Type": "application/cloudevents-batch+json"}


async def _post(gw: Any, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    async with gw.session.post(gw.url + path, data=json.dumps(body), headers=headers) as r:
        return r.status, await r.json()


async def test_a_cloudevent_for_another_filer_or_over_quota_is_refused(tmp_path, start_gateway):
    """Token limited to XYZ: a CloudEvent mapping to filer ZZZ is 403 naming filer_code; in
    a batch only that event is refused; XYZ's third event over burst 2 is 429."""
    token = {
        "sha256": hashlib.sha256(SECRET.encode()).hexdigest(),
        "filer_codes": ["XYZ"],
    }
    gw = await start_gateway(
        base_config(
            tmp_path,
            sources={"tms": TMS_SOURCE},
            auth={"mode": "token", "tokens": {"t": token}},
            quotas={"filers": {"XYZ": {"intake_per_second": 0.001, "burst": 2}}},
        )
    )
    status, body = await _post(
        gw, "/v1/filings", cloudevent(booking(1, filer="ZZZ"), id="c1"), STRUCTURED
    )
    assert status == 403 and body["error"]["details"]["loc"] == "filer_code", body
    status, body = await _post(gw, "/v1/filings", cloudevent(booking(2), id="c2"), STRUCTURED)
    assert status == 202, body
    batch = [
        cloudevent(booking(3, filer="ZZZ"), id="c3"),
        cloudevent(booking(4), id="c4"),
        cloudevent(booking(5), id="c5"),
    ]
    status, body = await _post(gw, "/v1/filings/batch", batch, BATCH)
    assert status == 200, body
    assert [r["http_status"] for r in body["results"]] == [403, 202, 429], body
    status, body = await _post(gw, "/v1/filings", cloudevent(booking(2), id="c2"), STRUCTURED)
    assert status == 200, body  # a replay goes through the used-up quota
