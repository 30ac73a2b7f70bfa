"""Cross-site and DNS-rebinding protection, in every auth mode, before any work.

* ``Host`` must name this gateway: the listen address, a loopback name (``localhost``,
  ``127.0.0.1``, ``[::1]``) or the address the connection arrived on (with any port or
  none: Docker and proxies publish other ports), or an entry of ``[gateway]
  allowed_hosts`` (an entry without a port allows any port). A page on ``evil.example``
  whose name was rebound to 127.0.0.1 sends ``Host: evil.example`` and is refused, so it
  can read nothing. A request with no
  ``Host`` at all (an HTTP/1.0 load-balancer probe) is not a browser's and passes.
* ``Origin``, when a browser sends one, must be the gateway's own (the same authority as
  ``Host``) or one of ``[gateway] allowed_origins``; ``Origin: null`` is refused.
* A write (POST, PUT, PATCH, DELETE) with a body must say JSON (``application/json``,
  ``application/*+json`` such as CloudEvents), X12 (``application/edi-x12``,
  ``application/x12``, ``text/x12``) or ``application/octet-stream``; a body without a
  type (a no-cors ``fetch`` of a Blob) is refused too. A binary-mode CloudEvent
  (``ce-specversion`` header) carries its data's own type: a browser cannot send that
  header across sites without a CORS preflight, which the gateway never grants. The three
  types an HTML form can send without a preflight (``text/plain``, form encodings) never
  reach a handler, even on a bodiless POST.

Refusals are 403 ``origin_refused`` / 415 ``unsupported_media_type`` with the header named.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway import config, errors

if TYPE_CHECKING:
    from gateway.delivery import spans

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("0.0.0.0", "::", "")
#: what a cross-site HTML form (or a no-cors fetch) can send without a CORS preflight
FORM_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: what a write's body may be declared as. ``application/octet-stream`` (what HTTP libraries
#: label raw bytes with) is no form's type: a browser preflights it, so it is as safe here
WRITE_TYPES = frozenset(
    {
        "application/json",
        "application/edi-x12",
        "application/x12",
        "text/x12",
        "application/octet-stream",
    }
)


def split_host(value: str) -> tuple[str, int | None] | None:
    """``name[:port]`` (``[v6][:port]``) → (name without brackets, port); None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else None
    else:
        name, sep, port_text = value.partition(":")
        if not sep:
            port_text = None
        elif ":" in port_text:
            return None
    if not name:
        return None
    if port_text is None:
        return name, None
    if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
        return None
    return name, int(port_text)


def _refuse(header: str, message: str) -> errors.OriginRefused:
    return errors.OriginRefused(
        message, details=[{"loc": f"header.{header}", "msg": "not allowed"}]
    )


class Edge:
    """The allow lists of one gateway, and the check every request passes first."""

    def __init__(self, section: config.GatewaySection) -> None:
        names = set(LOOPBACK_NAMES)
        if section.host.lower() not in WILDCARDS:
            names.add(section.host.lower())
        #: names served on any port
        self.own_names = frozenset(names)
        self.any_port: set[str] = set()
        self.exact: set[tuple[str, int]] = set()
        for entry in section.allowed_hosts:
            parsed = split_host(entry)
            if parsed is None:
                continue
            name, port = parsed
            if port is None:
                self.any_port.add(name)
            else:
                self.exact.add((name, port))
        self.origins = frozenset(section.allowed_origins)

    def host_allowed(self, host: str, request: web.Request) -> bool:
        parsed = split_host(host)
        if parsed is None:
            return False
        name, port = parsed
        if name in self.any_port or (port is not None and (name, port) in self.exact):
            return True
        # any port: a published or proxied port differs from ours, and a rebinding
        # attack is told apart by its name, never by its port
        if name in self.own_names:
            return True
        local = _local_address(request)  # only for a name not ours (an IP literal)
        local_ip = local[0] if local else ""
        # the address the connection arrived on, as a literal (a probe, a client by IP);
        # a rebound name is never an IP literal
        try:
            return ipaddress.ip_address(name) == ipaddress.ip_address(local_ip.split("%")[0])
        except ValueError:
            return False

    def origin_allowed(self, origin: str, host: str) -> bool:
        origin = origin.strip().lower()
        if origin in self.origins:
            return True
        scheme, sep, authority = origin.partition("://")
        if scheme not in ("http", "https") or not sep:
            return False
        return authority == host.strip().lower()

    def check(self, request: web.Request) -> None:
        host = request.headers.get("Host")
        # no Host at all: an HTTP/1.0 probe, never a browser (browsers always send one)
        if host is not None and not self.host_allowed(host, request):
            raise _refuse(
                "Host",
                f"Host {host[:100]!r} is not served here; add it to [gateway] allowed_hosts",
            )
        origin = request.headers.get("Origin")
        if origin is not None and not self.origin_allowed(origin, host or ""):
            raise _refuse(
                "Origin",
                f"requests from origin {origin[:100]!r} are refused; "
                "add it to [gateway] allowed_origins",
            )
        if request.method not in SAFE_METHODS:
            check_write_type(request)


def check_write_type(request: web.Request) -> None:
    """415 for a write whose body is not declared JSON or X12 (see the module doc)."""
    media = request.content_type.lower() if "Content-Type" in request.headers else ""
    if not request.body_exists:
        # a bare POST (retry, cancel; clients label it octet-stream or nothing): refused
        # only with a type an HTML form sends
        if media not in FORM_TYPES:
            return
    elif "ce-specversion" in request.headers or media in WRITE_TYPES or _json_suffix(media):
        return
    raise errors.UnsupportedMediaType(
        f"Content-Type {media or 'none'!r} is not accepted for {request.method}; "
        "send application/json",
        details=[{"loc": "header.Content-Type", "msg": "application/json expected"}],
    )


def _json_suffix(media: str) -> bool:
    """``application/cloudevents+json`` and other structured-syntax JSON types (RFC 6839)."""
    return media.startswith("application/") and media.endswith("+json")


def _local_address(request: web.Request) -> tuple[str, int] | None:
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return str(sockname[0]), int(sockname[1])
    return None


EDGE = web.AppKey("edge", Edge)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def traced(tracer: spans.Tracer) -> Middleware:
    """The server span of every request, outermost (it sees the error middleware's answer).

    Installed only when tracing is on. Named ``{method} {http.route}`` with the HTTP
    semantic conventions' attributes; a child of the request's ``traceparent``; while it
    is open a filing accepted keeps its context (``tracing.stamp``).
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else None
        local = _local_address(request)
        attributes: dict[str, Any] = {
            "http.request.method": request.method,
            "url.path": request.path,
            "url.scheme": request.scheme,
            "network.protocol.version": f"{request.version.major}.{request.version.minor}",
        }
        if route:
            attributes["http.route"] = route
        if request.query_string:
            attributes["url.query"] = request.query_string
        host = split_host(request.host)
        if host is not None:
            attributes["server.address"] = host[0]
        if local is not None:
            attributes["server.port"] = local[1]
        if request.remote:
            attributes["client.address"] = request.remote
        if agent := request.headers.get("User-Agent"):
            attributes["user_agent.original"] = agent
        name = f"{request.method} {route}" if route else request.method
        with tracer.server(name, request.headers, attributes) as span:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                tracer.server_status(span, exc.status)
                raise
            tracer.server_status(span, response.status)
            return response

    return middleware
