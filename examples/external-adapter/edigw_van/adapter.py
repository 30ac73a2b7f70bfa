"""``van``: hand each delivery to a value-added network (VAN) through its HTTP API.

This is the shape a certified ACE connectivity provider's adapter takes (a VAN API, an
IBM MQ bridge): a class with an ``Options`` model, ``open``/``close``/``send``/``check``,
that speaks the provider's protocol and reports every outcome with the gateway's errors
(``MessageError`` for a message it cannot carry). It imports only the gateway's small
contract: ``adapters.base``, ``gateway.models``, ``gateway.errors`` (and
``gateway.durations`` for durations).

The VAN API here is illustrative (shape your own on your provider's documentation):

* ``POST {url}/mailboxes/{mailbox}/messages`` with the document as the body,
  ``Authorization: Bearer <key>`` and ``Idempotency-Key: <delivery id>``;
  ``201`` (new) or ``200`` (a duplicate of the same key) with ``{"message_id": …}``;
* ``503`` with ``X-Maintenance-Until`` (ISO 8601): the VAN is in a maintenance window;
* ``GET {url}/health`` answers ``200`` when the VAN takes messages.
"""

from __future__ import annotations

import io
import os
from datetime import datetime

import aiohttp
from pydantic import Field, HttpUrl

from adapters import base
from adapters.base import Duration
from gateway import errors, models

#: HTTP status → our error class; anything 5xx not listed is transient
_STATUS_ERRORS: dict[int, type[errors.DeliveryError]] = {
    400: errors.PermanentError,
    401: errors.PermanentError,
    403: errors.PermanentError,
    404: errors.PermanentError,
    408: errors.TransientError,
    413: errors.PermanentError,
    422: errors.PermanentError,
    429: errors.TransientError,
}


class VanOptions(base.AdapterOptions):
    url: HttpUrl = Field(description="base URL of the VAN API")
    mailbox: str = Field(
        min_length=1, pattern=r"^[A-Za-z0-9._-]+$", description="the VAN mailbox to post to"
    )
    api_key_env: str = Field(min_length=1, description="env var holding the VAN API key")
    timeout: Duration = Field(default=30.0, gt=0, description="whole-request timeout")


class VanAdapter(base.BaseAdapter):
    """Posts each delivery to ``{url}/mailboxes/{mailbox}/messages``."""

    Options = VanOptions

    def __init__(self, *, name: str, options: VanOptions) -> None:
        super().__init__(name=name, options=options)
        self.options: VanOptions = options
        self._session: aiohttp.ClientSession | None = None

    def _endpoint(self, path: str) -> str:
        return str(self.options.url).rstrip("/") + path

    def _api_key(self) -> str:
        key = os.environ.get(self.options.api_key_env)
        if not key:
            raise errors.PermanentError(f"env var {self.options.api_key_env} (VAN key) is not set")
        return key

    async def open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.options.timeout)
            )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def send(self, message: models.OutboundMessage) -> models.Receipt:
        await self.open()
        assert self._session is not None
        url = self._endpoint(f"/mailboxes/{self.options.mailbox}/messages")
        headers = {
            "Authorization": f"Bearer {self._api_key()}",
            "Idempotency-Key": message.delivery_id,
            "Content-Type": message.content_type,
            "X-Reference": message.reference,
        }
        base.carriable(headers)  # CR/LF or NUL in a value: the message's fault (MessageError)
        # a file-like body streams; aiohttp warns about raw bytes over 1 MiB
        body = io.BytesIO(message.body)
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                status = response.status
                text = (await response.text())[:300]
                until = response.headers.get("X-Maintenance-Until")
                answer = await response.json() if status in (200, 201) else {}
        except TimeoutError as exc:
            raise errors.TransientError(f"VAN timed out after {self.options.timeout:g}s") from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise errors.TransientError(f"VAN unreachable: {type(exc).__name__}: {exc}") from exc
        if status in (200, 201):
            return models.Receipt(
                transport_id=str(answer.get("message_id")),
                status=str(status),
                detail={"duplicate": status == 200},
            )
        if status == 503 and until:
            try:
                when = datetime.fromisoformat(until)
            except ValueError:
                when = None
            raise errors.OutageError(f"VAN maintenance until {until}", until=when)
        error = _STATUS_ERRORS.get(status, errors.TransientError if status >= 500 else None)
        raise (error or errors.PermanentError)(f"VAN answered HTTP {status}: {text}")

    async def check(self) -> models.Health:
        await self.open()
        assert self._session is not None
        try:
            async with self._session.get(self._endpoint("/health")) as response:
                ok = response.status == 200
                return models.Health(ok=ok, detail=f"VAN health: HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return models.Health(ok=False, detail=f"VAN unreachable: {type(exc).__name__}: {exc}")
