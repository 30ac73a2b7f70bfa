"""The SSRF guard for callback URLs: an allowlist of hosts, every resolved address checked,
and a resolver that hands aiohttp only the addresses it checked.

Rules:

* the URL's ``host`` (or ``host:port``) must match an entry of ``[callbacks] allowed_hosts``
  (an entry without a port matches any port);
* every address the host resolves to (IPv4 and IPv6) must be public; a loopback, private,
  link-local (cloud metadata), unique-local, reserved, multicast, unspecified or
  IPv4-mapped address passes only when an allowlist entry names that address itself;
* the connection goes to an address that was checked: ``GuardedResolver`` resolves once,
  checks, and returns only those addresses (no second lookup, no DNS rebinding window).

Redirects are never followed by the caller (``allow_redirects=False``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from gateway import errors

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Lookup = Callable[[str, int], Awaitable[list[str]]]


class CallbackRefused(errors.InvalidInput):
    """The callback URL is not allowed."""

    code = "callback_refused"


@dataclass(frozen=True, slots=True)
class Entry:
    host: str
    port: int | None


def parse_entry(text: str) -> Entry:
    """``host``, ``host:port``, ``1.2.3.4:80``, ``::1``, ``[::1]:8080`` → Entry."""
    value = text.strip().lower()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":")
        return Entry(host, int(port) if port else None)
    if value.count(":") > 1:
        return Entry(value, None)
    host, sep, port = value.partition(":")
    if sep and not port.isdigit():
        raise ValueError(f"allowed_hosts entry {text!r}: the port must be a number")
    return Entry(host, int(port) if sep else None)


def is_special(ip: IPAddress) -> bool:
    """Whether an address is one a callback must not reach unless named explicitly."""
    if isinstance(ip, ipaddress.IPv6Address) and (
        ip.ipv4_mapped is not None or ip.sixtofour is not None or ip.teredo is not None
    ):
        return True
    return (
        not ip.is_global
        or ip.is_multicast
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_unspecified
    )


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


async def system_lookup(host: str, port: int) -> list[str]:
    """Every IPv4 and IPv6 address of a host name."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class HostPolicy:
    """Which callback URLs and addresses are allowed."""

    def __init__(self, allowed_hosts: Sequence[str], *, lookup: Lookup = system_lookup) -> None:
        self.entries = [parse_entry(e) for e in allowed_hosts]
        self.lookup = lookup

    def host_allowed(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]")
        return any(e.host == host and e.port in (None, port) for e in self.entries)

    def address_allowed(self, address: str, port: int) -> bool:
        ip = _literal(address)
        if ip is None:
            return False
        if not is_special(ip):
            return True
        return any(_literal(e.host) == ip and e.port in (None, port) for e in self.entries)

    @staticmethod
    def split(url: str) -> tuple[str, int]:
        try:
            parts = urlsplit(url)
            hostname = parts.hostname
        except ValueError as exc:  # e.g. "Invalid IPv6 URL" for an unbalanced "["
            raise CallbackRefused(f"callback URL is not a URL: {exc}") from exc
        if parts.scheme not in ("http", "https") or not hostname:
            raise CallbackRefused("a callback URL is http(s)://host[:port]/path")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise CallbackRefused(f"callback URL port: {exc}") from exc
        return hostname, port

    def check_host(self, host: str, port: int) -> None:
        if not self.entries:
            raise CallbackRefused(
                "callbacks are off: no [callbacks] allowed_hosts configured",
                details={"host": host},
            )
        if not self.host_allowed(host, port):
            raise CallbackRefused(
                f"callback host {host}:{port} is not in [callbacks] allowed_hosts",
                details={"host": host, "port": port},
            )

    def check_addresses(self, host: str, port: int, addresses: Sequence[str]) -> None:
        if not addresses:
            raise CallbackRefused(f"callback host {host} has no address", details={"host": host})
        bad = [a for a in addresses if not self.address_allowed(a, port)]
        if bad:
            raise CallbackRefused(
                f"callback host {host} resolves to a refused address ({', '.join(bad)}): "
                "loopback, private, link-local and IPv4-mapped addresses need their own "
                "allowed_hosts entry",
                details={"host": host, "addresses": bad},
            )

    async def check_url(self, url: str) -> list[str]:
        """The checked addresses of a callback URL's host, or ``CallbackRefused``."""
        host, port = self.split(url)
        self.check_host(host, port)
        literal = _literal(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = await self.lookup(host, port)
            except OSError as exc:
                raise CallbackRefused(
                    f"callback host {host} does not resolve: {exc}", details={"host": host}
                ) from exc
        self.check_addresses(host, port, addresses)
        return addresses


class GuardedResolver(AbstractResolver):
    """aiohttp resolver returning only addresses the policy checked (all of them, or none)."""

    def __init__(self, policy: HostPolicy) -> None:
        self.policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            addresses = await self.policy.check_url(f"http://{_bracket(host)}:{port}/")
        except CallbackRefused as exc:
            raise OSError(str(exc)) from exc
        out: list[ResolveResult] = []
        for address in addresses:
            ip = ipaddress.ip_address(address)
            fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            if family not in (socket.AF_UNSPEC, fam):
                continue
            out.append(
                ResolveResult(
                    hostname=host,
                    host=address,
                    port=port,
                    family=fam,
                    proto=0,
                    flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                )
            )
        if not out:
            raise OSError(f"no checked address of {host} in the requested family")
        return out

    async def close(self) -> None:
        return None


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host
