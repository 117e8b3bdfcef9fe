"""The address policy for every outbound fetch headend makes on a user's behalf.

A URL's host is read the way the HTTP client will read it (yarl: IDNA and Unicode
normalisation, so fullwidth digits and ideographic full stops spell ``127.0.0.1`` too); an
IP literal is checked as it is, a name by every address it resolves to, and the connection
is made only to an address that was checked: the socket factory checks the address once
more right before ``connect``, whatever path led there.

Refused: loopback, private, link-local (cloud metadata included), carrier-grade NAT
(100.64.0.0/10), multicast, reserved, unspecified and every other non-global range, and the
same hidden in IPv6: IPv4-mapped, IPv4-compatible, 6to4 (2002::/16), NAT64 (64:ff9b::/96)
and Teredo (2001::/32) addresses. Hosts an agent lists in ``allow_hosts`` are exempt, and so
are MCP servers reached over HTTP, whose URLs come from the operator's config, not a model.

Through an egress proxy (``HTTPS_PROXY``…) the fence still checks the target, not the proxy:
the target's name is resolved here and every address checked before the request is sent, and
the one connection made, to the proxy (an operator's choice, often on a private address), is
let through. The proxy resolves the name again itself, so a name that changes its answer in
between (DNS rebinding) is the one case the proxy's own policy must cover.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from headend.proxies import Proxy
from headend.tools.base import ToolError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

CGNAT = ipaddress.ip_network("100.64.0.0/10")
IETF_PROTOCOL = ipaddress.ip_network("192.0.0.0/24")  # not global, whatever Python's version says
NAT64 = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, NAT64)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64 or (ip in IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refused_reason(address: str | IPAddress) -> str | None:
    """Why an address may not be fetched, or None when it may."""
    ip = address if not isinstance(address, str) else ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.teredo is not None:
            return f"{ip} is a Teredo tunnel address"
        if ip in NAT64_LOCAL:
            return f"{ip} is a local-use NAT64 address"
        inner = _embedded(ip)
        if inner is not None:
            reason = refused_reason(inner)
            return None if reason is None else f"{ip} carries {reason}"
    for reason, flag in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("carrier-grade NAT", isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT),
        ("reserved", isinstance(ip, ipaddress.IPv4Address) and ip in IETF_PROTOCOL),
        ("unspecified", ip.is_unspecified),
        ("private", ip.is_private),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("non-global", not ip.is_global),
    ):
        if flag:
            return f"{ip} is a {reason} address"
    return None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


class Fence:
    """One fetch's policy: its allowed hosts, and the addresses it has let through."""

    def __init__(self, allow_hosts: frozenset[str]) -> None:
        self.allow_hosts = allow_hosts
        self._allowed_addresses: set[str] = set()
        self._proxy_host: str | None = None  # this hop's proxy, the one connection allowed

    def target(self, url: str | URL) -> URL:
        """The URL as the HTTP client will see it, refused when its host is fenced off.

        Called for each hop: what an earlier hop's allowed host resolved to is forgotten."""
        self._allowed_addresses.clear()
        self._proxy_host = None
        try:
            parsed = url if isinstance(url, URL) else URL(url)
        except (ValueError, TypeError, UnicodeError) as exc:
            raise ToolError(f"not a valid URL: {exc}") from None
        if parsed.scheme not in ("http", "https"):
            raise ToolError("only http and https URLs can be fetched")
        try:
            host = (parsed.raw_host or "").lower()  # what the client connects to, IDNA applied
        except (ValueError, UnicodeError) as exc:
            raise ToolError(f"not a valid host name: {exc}") from None
        if not host:
            raise ToolError("the URL has no host")
        ip = _literal(host)
        if host in self.allow_hosts:
            if ip is not None:
                self._allowed_addresses.add(str(ip))
            return parsed
        if ip is not None and (reason := refused_reason(ip)) is not None:
            raise ToolError(f"refused: {reason}")
        return parsed

    async def through(self, proxy: Proxy, target: URL) -> None:
        """This hop goes through ``proxy``: check the target's addresses now (the proxy will
        connect to it, not us), and let the connection to the proxy through."""
        host = (target.raw_host or "").lower()
        if host not in self.allow_hosts and _literal(host) is None:
            resolver = aiohttp.ThreadedResolver()
            try:
                results = await resolver.resolve(host, target.port or 0, socket.AF_UNSPEC)
            except OSError as exc:
                raise ToolError(f"cannot resolve {host}: {exc.strerror or exc}") from None
            finally:
                await resolver.close()
            self.allow_resolved(host, results)
        self._proxy_host = proxy.host.lower()
        literal = _literal(self._proxy_host)
        if literal is not None:
            self._allowed_addresses.add(str(literal))

    def allow_resolved(self, host: str, results: list[ResolveResult]) -> None:
        """Check a name's addresses (all of them, or none is used)."""
        if host.lower() in self.allow_hosts or host.lower() == self._proxy_host:
            self._allowed_addresses.update(result["host"] for result in results)
            return
        for result in results:
            reason = refused_reason(result["host"])
            if reason is not None:
                raise ToolError(f"refused: {host} resolves to {reason}")

    def socket(self, addr_info: Any) -> socket.socket:
        """The last check, on the address about to be connected to."""
        family, kind, proto, _, sockaddr = addr_info
        address = str(sockaddr[0])
        if address not in self._allowed_addresses:
            reason = refused_reason(address)
            if reason is not None:
                raise ToolError(f"refused: {reason}")
        return socket.socket(family, kind, proto)

    def connector(self) -> aiohttp.TCPConnector:
        return aiohttp.TCPConnector(
            resolver=FencedResolver(self), socket_factory=self.socket, use_dns_cache=False
        )


class FencedResolver(AbstractResolver):
    """Resolves like the system does, then lets through only names whose addresses pass."""

    def __init__(self, fence: Fence) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._fence = fence

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        self._fence.allow_resolved(host, results)
        return results

    async def close(self) -> None:
        await self._inner.close()
