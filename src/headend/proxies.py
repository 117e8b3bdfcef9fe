"""Which egress proxy an outbound request goes through, as curl, the official SDKs and
LiteLLM decide it.

- A provider's (or an MCP server's) own ``proxy: http://[user:password@]host:port`` is used
  for its URLs whatever the environment says.
- Otherwise the environment: ``https_proxy`` for ``https://`` URLs, ``http_proxy`` for
  ``http://`` ones, ``all_proxy`` for either (the lower-case name first, then the upper-case
  one), unless ``no_proxy`` names the host: ``*`` (every host), a domain (``example.com``
  and ``.example.com`` both match it and its subdomains), an IP address or a CIDR block,
  each optionally with ``:port``.

Only ``http://`` proxies: ``https://`` targets are reached through a CONNECT tunnel in them,
``http://`` targets by asking them for the absolute URL. Nothing here ever prints a proxy's
credentials: ``Proxy.shown`` leaves them out.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import unquote, urlsplit

from pydantic import AfterValidator, Field

from headend.urls import without_credentials


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    authorization: str | None  # the Proxy-Authorization header's value, from the URL's userinfo
    shown: str  # the URL without its credentials, for messages

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_proxy(url: str) -> Proxy:
    """``http://[user:password@]host[:port]``; ValueError saying what is wrong otherwise."""
    parts = urlsplit(url.strip())
    if parts.scheme != "http":
        raise ValueError(f"a proxy is an http:// URL, not {without_credentials(url)!r}")
    if not parts.hostname:
        raise ValueError(f"the proxy URL {without_credentials(url)!r} has no host")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise ValueError(f"the proxy URL {without_credentials(url)!r}: {exc}") from None
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return Proxy(parts.hostname, port, authorization, without_credentials(url))


def _checked(value: str | None) -> str | None:
    if value:
        parse_proxy(value)  # raises saying what is wrong
    return value


# A config section's ``proxy:``, checked when the config is read (never shown in a repr).
ProxySetting = Annotated[str | None, AfterValidator(_checked), Field(repr=False)]


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name) or env.get(name.upper())
    return value.strip() if value and value.strip() else None


def bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``no_proxy`` names ``host`` (a name or an IP literal) on ``port``."""
    host = host.strip("[]").lower().rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        name, entry_port = _split_port(entry)
        if entry_port is not None and entry_port != port:
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(name.strip("[]"), strict=False):
                    return True
            except ValueError:
                pass
            continue
        domain = name.lstrip(".").rstrip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    """``host:port``, ``[v6]:port`` or a bare entry (an IPv6 address keeps its colons)."""
    if entry.startswith("["):
        name, _, rest = entry[1:].partition("]")
        return name, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        return name, int(port) if port.isdigit() else None
    return entry, None


def proxy_for(url: str, configured: str | None, env: Mapping[str, str]) -> Proxy | None:
    """The proxy ``url`` goes through: ``configured`` (a provider's own), else the
    environment's unless ``no_proxy`` names the host, else None (a direct connection)."""
    if configured:
        return parse_proxy(configured)
    parts = urlsplit(url)
    scheme = parts.scheme
    chosen = _env(env, f"{scheme}_proxy") or _env(env, "all_proxy")
    if chosen is None or not parts.hostname:
        return None
    port = parts.port or (443 if scheme == "https" else 80)
    no_proxy = _env(env, "no_proxy")
    if no_proxy and bypassed(parts.hostname, port, no_proxy):
        return None
    return parse_proxy(chosen)
