"""``http_fetch``: GET or POST a URL, fenced against server-side request forgery.

Every address a host name resolves to is checked before connecting (so a name that points
at 127.0.0.1 is refused like 127.0.0.1 itself); IP literals are checked directly; redirects
are followed one hop at a time and each hop is checked again. Loopback, private, link-local
(cloud metadata at 169.254.169.254 included), multicast, reserved and unspecified addresses
are refused unless the agent file lists the host under ``allow_hosts``.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from headend.tools.base import Json, ToolContext, ToolError

MAX_BYTES = 100_000
MAX_REDIRECTS = 5
METHODS = ("GET", "POST")


def refused_reason(address: str) -> str | None:
    """Why an address may not be fetched, or None when it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for reason, flag in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("private", ip.is_private),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("unspecified", ip.is_unspecified),
    ):
        if flag:
            return f"{ip} is a {reason} address"
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class GuardedResolver(AbstractResolver):
    """Resolves like the system does, then refuses names that lead to fenced addresses."""

    def __init__(self, allow_hosts: frozenset[str]) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._allow = allow_hosts

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if host.lower() not in self._allow:
            for result in results:
                reason = refused_reason(result["host"])
                if reason is not None:
                    raise ToolError(f"refused: {host} resolves to {reason}")
        return results

    async def close(self) -> None:
        await self._inner.close()


def check_url(url: str, allow_hosts: frozenset[str]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ToolError("only http and https URLs can be fetched")
    host = (parts.hostname or "").lower()
    if not host:
        raise ToolError("the URL has no host")
    if host in allow_hosts:
        return
    if _is_ip(host):
        reason = refused_reason(host.strip("[]"))
        if reason is not None:
            raise ToolError(f"refused: {reason}")


class HttpFetch:
    name = "http_fetch"
    description = (
        "Fetch a web page or API over HTTP(S): GET, or POST with a body. Returns the status, "
        "the content type and the start of the body (at most 100 kB)."
    )
    timeout = 20.0

    def __init__(self) -> None:
        self.parameters: Json = {
            "type": "object",
            "properties": {
                "url": {"type": "string", "description": "http:// or https:// URL"},
                "method": {"type": "string", "enum": list(METHODS), "default": "GET"},
                "body": {"type": "string", "description": "request body, for POST"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "required": ["url"],
        }

    async def run(self, arguments: Json, context: ToolContext) -> str:
        url = arguments.get("url")
        method = str(arguments.get("method") or "GET").upper()
        if not isinstance(url, str):
            raise ToolError("'url' must be a string")
        if method not in METHODS:
            raise ToolError(f"'method' must be one of {', '.join(METHODS)}")
        headers = arguments.get("headers") or {}
        if not isinstance(headers, dict):
            raise ToolError("'headers' must be an object")
        body = arguments.get("body")
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(context.allow_hosts))
        async with aiohttp.ClientSession(connector=connector, trust_env=False) as http:
            for _hop in range(MAX_REDIRECTS + 1):
                check_url(url, context.allow_hosts)
                try:
                    async with http.request(
                        method,
                        url,
                        data=body if method == "POST" else None,
                        headers={str(k): str(v) for k, v in headers.items()},
                        allow_redirects=False,
                    ) as response:
                        if response.status in (301, 302, 303, 307, 308) and (
                            location := response.headers.get("location")
                        ):
                            url = urljoin(url, location)
                            method = "GET" if response.status == 303 else method
                            continue
                        return await _describe(response)
                except aiohttp.ClientConnectorError as exc:
                    if isinstance(exc.__cause__, ToolError):
                        raise exc.__cause__ from None
                    raise ToolError(f"cannot connect: {exc.os_error}") from None
                except (TimeoutError, aiohttp.ClientError) as exc:
                    raise ToolError(f"request failed: {type(exc).__name__}: {exc}") from None
        raise ToolError(f"more than {MAX_REDIRECTS} redirects")

    def label(self, arguments: Json) -> str:
        method = str(arguments.get("method") or "GET").upper()
        return f"{method} {str(arguments.get('url', ''))[:100]}"


async def _describe(response: aiohttp.ClientResponse) -> str:
    data = b""
    async for chunk in response.content.iter_chunked(16_384):
        data += chunk
        if len(data) > MAX_BYTES:
            break
    truncated = len(data) > MAX_BYTES
    try:
        text = data[:MAX_BYTES].decode(response.charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        text = data[:MAX_BYTES].decode("utf-8", errors="replace")
    head = f"HTTP {response.status} {response.reason or ''}".rstrip()
    kind = response.headers.get("content-type", "unknown")
    note = f"\n[truncated at {MAX_BYTES} bytes]" if truncated else ""
    return f"{head}\ncontent-type: {kind}\n\n{text}{note}"
