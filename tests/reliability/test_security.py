"""Row 12: every protected endpoint refuses a missing token (401) and a token without its
scope (403); SSRF-safe callbacks; the log scan (``logscan``) covers the third part."""

from __future__ import annotations

import hashlib
import re

import pytest

from gateway.api import app as api_app
from tests.conftest import base_config, example
from tests.reliability import logscan

SCOPES = ("submit", "read", "operate", "admin")
#: one token per scope it lacks; the secrets are registered with the log scan
SECRETS = {f"no-{s}": f"tok-{s}-0123456789abcdefSECRET" for s in SCOPES}


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "fil_01HZZZZZZZZZZZZZZZZZZZZZZZ", path)


@pytest.fixture
async def secured(tmp_path, start_gateway):
    for secret in SECRETS.values():
        logscan.register_secret(secret)
    tokens = {
        name: {
            "sha256": hashlib.sha256(secret.encode()).hexdigest(),
            "scopes": [s for s in SCOPES if s != name.removeprefix("no-")],
        }
        for name, secret in SECRETS.items()
    }
    return await start_gateway(base_config(tmp_path, auth={"mode": "token", "tokens": tokens}))


async def call(gw, method: str, path: str, token: str | None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = example() if method == "POST" else None
    async with gw.session.request(method, gw.url + path, json=body, headers=headers) as r:
        if r.content_type != "application/json":  # /metrics, dashboard pages
            return r.status, {"error": {"code": (await r.text())[:40]}}
        return r.status, await r.json()


async def test_every_protected_endpoint_needs_a_token_and_its_scope(secured, figure):
    """Row 12: no token or a wrong token → 401; a token without the route's scope → 403."""
    checked = 0
    for method, path, _, scope in api_app.ROUTES:
        if scope is None:
            continue
        url = _concrete(path)
        for token in (None, "not-a-known-token-xyz"):
            status, body = await call(secured, method, url, token)
            assert status == 401 and body["error"]["code"], (method, path, token, body)
        status, body = await call(secured, method, url, SECRETS[f"no-{scope}"])
        assert status == 403, (method, path, body)
        status, _ = await call(
            secured, method, url, SECRETS[f"no-{SCOPES[SCOPES.index(scope) - 1]}"]
        )
        assert status not in (401, 403), (method, path)  # the right scope gets through
        checked += 1
    public = [p for _, p, _, s in api_app.ROUTES if s is None]
    for path in public:
        async with secured.session.get(secured.url + path) as r:
            assert r.status == 200, path
    async with secured.session.get(secured.url + "/v1/filings") as r:
        assert "Bearer" in r.headers["WWW-Authenticate"]
    figure(
        "row12",
        f"{checked} protected endpoints x (no token, unknown token) → 401, wrong scope → 403; "
        f"{len(public)} public endpoints open",
    )


INTERNAL = (
    "127.0.0.1",
    "10.1.2.3",
    "192.168.0.1",
    "169.254.169.254",
    "::1",
    "::ffff:127.0.0.1",
    "fe80::1",
)


async def test_callbacks_to_internal_addresses_are_refused_without_connecting():
    """Row 12: an allowed name resolving to a private, loopback, link-local or IPv4-mapped
    address is refused (rebinding); a literal internal address is refused as a host."""
    from gateway.delivery import ssrf

    answer: list[str] = []
    asked: list[tuple[str, int]] = []

    async def lookup(host: str, port: int) -> list[str]:  # DNS, as an attacker controls it
        asked.append((host, port))
        return list(answer)

    policy = ssrf.HostPolicy(["hooks.example.com"], lookup=lookup)
    answer[:] = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]
    assert await policy.check_url("https://hooks.example.com/cb") == answer  # public: allowed
    for address in INTERNAL:
        answer[:] = ["93.184.216.34", address]  # one internal address among public ones
        with pytest.raises(ssrf.CallbackRefused, match="resolves to a refused address") as got:
            await policy.check_url("https://hooks.example.com/cb")
        assert got.value.details == {"host": "hooks.example.com", "addresses": [address]}
        literal = f"[{address}]" if ":" in address else address
        with pytest.raises(ssrf.CallbackRefused, match="not in \\[callbacks\\] allowed_hosts"):
            await policy.check_url(f"http://{literal}/cb")
    # one lookup per named URL, none for the literal addresses (nothing was connected to)
    assert asked == [("hooks.example.com", 443)] * (1 + len(INTERNAL))


def test_log_scan_flags_unmasked_importer_numbers_and_tokens_but_not_masks():
    """The row-12 scanner finds an SSN, an EIN, a bearer token and a registered secret."""
    scanner = logscan.Scanner(secrets={"s3cr3t-value-xyz"})
    scanner.scan_text("t", '{"event": "x", "importer": "123-45-6789"}')
    scanner.scan_text("t", '{"ein": "12-3456789AB"}')
    scanner.scan_text("t", '{"h": "Authorization: Bearer abcdefgh12345"}')
    scanner.scan_text("t", '{"note": "s3cr3t-value-xyz"}')
    scanner.scan_text("t", '{"ssn": "***-**-6789", "at": "2026-01-07T17:00:00Z", "p": 41507}')
    scanner.scan_text("t", '{"h": "Bearer ****2345"}')
    assert len(scanner.findings) == 4 and scanner.lines == 6
