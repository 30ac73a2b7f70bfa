"""``http``: POST each delivery to a URL.

2xx → delivered (the receipt keeps the status and an excerpt of the body);
503 with ``Retry-After`` → ``OutageError(until=…)`` (the receiver says it is down until
then: defer without spending an attempt); 408, 429, other 5xx and connection errors →
``TransientError`` (``Retry-After`` honoured);
any other 4xx → ``PermanentError``. The delivery id goes out as ``Idempotency-Key``
so the receiver can deduplicate a redelivery. aiohttp's exceptions never leave this
module: they are translated at the edge, ``from exc``. When the gateway traces, the
request carries the attempt's W3C ``traceparent``/``tracestate`` (``trace_headers``) and
``trace_span`` describes the HTTP client span.
"""

from __future__ import annotations

import email.utils
import io
import os
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import Field, HttpUrl, model_validator

from adapters import base
from adapters.base import Duration
from gateway import errors, models

#: the receiver refuses the message's size (body, URI, headers): the message's own fault
TOO_LARGE_STATUSES = frozenset({413, 414, 431})
TRANSIENT_STATUSES = frozenset({408, 425, 429})
BODY_EXCERPT_BYTES = 512
LARGE_BODY_BYTES = 1 << 20
#: where the dispatcher hands an attempt's W3C trace context to the adapter
TRACE_KEY = "_trace"


class HttpOptions(base.AdapterOptions):
    url: HttpUrl = Field(description="where deliveries are POSTed")
    method: str = Field(default="POST", pattern=r"^(POST|PUT)$")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers")
    bearer_token_env: str | None = Field(
        default=None, description="name of the env var holding a bearer token"
    )
    timeout: Duration = Field(default=30.0, gt=0, description="whole-request timeout")
    ca_file: Path | None = Field(default=None, description="CA bundle to verify the server")
    client_cert_file: Path | None = Field(default=None, description="TLS client certificate")
    client_key_file: Path | None = Field(default=None, description="key of the client cert")
    verify_tls: bool = True

    @model_validator(mode="after")
    def _cert_pair(self) -> HttpOptions:
        if self.client_key_file is not None and self.client_cert_file is None:
            raise ValueError("client_key_file needs client_cert_file")
        for path in (self.ca_file, self.client_cert_file, self.client_key_file):
            if path is not None and not path.is_file():
                raise ValueError(f"{path} does not exist")
        return self


def trace_headers(message: models.OutboundMessage) -> dict[str, str]:
    """W3C ``traceparent``/``tracestate`` of this attempt, when the gateway traces it (the
    dispatcher puts them in the message's metadata under ``_trace``)."""
    trace = message.metadata.get(TRACE_KEY)
    if not isinstance(trace, dict):
        return {}
    return {k: v for k in ("traceparent", "tracestate") if isinstance(v := trace.get(k), str)}


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class HttpAdapter(base.BaseAdapter):
    """POSTs the encoded filing to ``url``."""

    Options = HttpOptions

    def __init__(self, *, name: str, options: HttpOptions) -> None:
        super().__init__(name=name, options=options)
        self.options: HttpOptions = options
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext | bool:
        o = self.options
        if not o.verify_tls:
            return False
        if o.ca_file is None and o.client_cert_file is None:
            return True
        ctx = ssl.create_default_context(cafile=str(o.ca_file) if o.ca_file else None)
        if o.client_cert_file is not None:
            ctx.load_cert_chain(
                str(o.client_cert_file), str(o.client_key_file) if o.client_key_file else None
            )
        return ctx

    async def open(self) -> None:
        if self._session is None:
            try:
                ssl_ctx = self._ssl()
            except (OSError, ssl.SSLError) as exc:
                raise errors.PermanentError(f"TLS setup failed: {exc}") from exc
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=ssl_ctx, limit=100),
                timeout=aiohttp.ClientTimeout(total=self.options.timeout),
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _headers(self, message: models.OutboundMessage) -> dict[str, str]:
        headers = {
            "Content-Type": message.content_type,
            "Idempotency-Key": message.delivery_id,
            "X-EDI-Filing-Id": message.filing_id,
            "X-EDI-Filing-Type": message.filing_type.value,
            "X-EDI-Environment": message.environment.value,
            "X-EDI-Attempt": str(message.attempt),
            **self.options.headers,
        }
        if self.options.bearer_token_env:
            token = os.environ.get(self.options.bearer_token_env)
            if not token:
                raise errors.PermanentError(
                    f"env var {self.options.bearer_token_env} (bearer token) is not set"
                )
            headers["Authorization"] = f"Bearer {token}"
        headers |= trace_headers(message)
        base.carriable(headers)
        return headers

    def trace_span(self, message: models.OutboundMessage) -> tuple[str, str, dict[str, Any]]:
        """This send's span for the gateway's tracing: an HTTP client span, named and
        attributed after OpenTelemetry's semantic conventions."""
        url = self.options.url
        attributes: dict[str, Any] = {
            "http.request.method": self.options.method,
            "url.full": str(url),
            "server.address": url.host or "",
            "server.port": url.port or (443 if url.scheme == "https" else 80),
            "url.scheme": url.scheme,
        }
        return self.options.method, "client", attributes

    async def send(self, message: models.OutboundMessage) -> models.Receipt:
        await self.open()
        assert self._session is not None
        url = str(self.options.url)
        # aiohttp warns (and may block the loop) on raw bytes over 1 MiB: stream those
        large = len(message.body) > LARGE_BODY_BYTES
        body: bytes | io.BytesIO = io.BytesIO(message.body) if large else message.body
        try:
            async with self._session.request(
                self.options.method,
                url,
                data=body,
                headers=self._headers(message),
                allow_redirects=False,
            ) as response:
                excerpt = (await response.content.read(BODY_EXCERPT_BYTES)).decode(
                    "utf-8", "replace"
                )
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except TimeoutError as exc:
            raise errors.TransientError(f"timed out after {self.options.timeout:g}s") from exc
        except aiohttp.ClientError as exc:
            raise errors.TransientError(f"{type(exc).__name__}: {exc}") from exc
        if 200 <= status < 300:
            return models.Receipt(
                status=str(status),
                detail={"body": excerpt},
                transport_id=None,
            )
        text = f"HTTP {status}: {excerpt[:200]}".strip()
        if status == 503 and retry_after is not None:
            until = datetime.now(UTC) + timedelta(seconds=retry_after)
            raise errors.OutageError(text, until=until, retry_after=retry_after)
        if status in TRANSIENT_STATUSES or status >= 500:
            raise errors.TransientError(text, retry_after=retry_after)
        if status in TOO_LARGE_STATUSES:  # the message is too large for this receiver
            raise errors.MessageError(text)
        raise errors.PermanentError(text)

    async def check(self) -> models.Health:
        return models.Health(
            ok=self._session is not None and not self._session.closed, detail=str(self.options.url)
        )
