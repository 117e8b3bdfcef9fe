"""``http_fetch``: GET or POST a URL, fenced against server-side request forgery.

Each hop (redirects are followed one at a time) goes through the address policy of
``headend.tools.fence``: the host as the client reads it, every address it resolves to, and
the address actually connected to are checked; fenced addresses are refused unless the
agent file lists the host under ``allow_hosts``. ``HTTPS_PROXY``, ``HTTP_PROXY`` and
``NO_PROXY`` are honoured (``headend.proxies``), the fence checking the target either way.
"""

from __future__ import annotations

import os

import aiohttp
from yarl import URL

from headend.proxies import Proxy, proxy_for
from headend.tools.base import ToolContext, ToolError
from headend.tools.fence import Fence
from headend.types import Json

MAX_BYTES = 100_000
MAX_REDIRECTS = 5
METHODS = ("GET", "POST")


class HttpFetch:
    name = "http_fetch"
    ref = "http_fetch"
    read_only = True  # for GET: a read-only run refuses POST
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
        if method != "GET" and context.read_only:
            raise ToolError("refused: this key may only read, so only GET is allowed")
        headers = arguments.get("headers") or {}
        if not isinstance(headers, dict):
            raise ToolError("'headers' must be an object")
        body = arguments.get("body")
        fence = Fence(context.allow_hosts)
        target = fence.target(url)
        # trust_env off: headend picks the proxy itself, so that the fence knows of it
        async with aiohttp.ClientSession(connector=fence.connector(), trust_env=False) as http:
            for _hop in range(MAX_REDIRECTS + 1):
                proxy = proxy_for(str(target), None, os.environ)
                if proxy is not None:
                    await fence.through(proxy, target)
                try:
                    async with http.request(
                        method,
                        target,
                        data=body if method == "POST" else None,
                        headers={str(k): str(v) for k, v in headers.items()},
                        allow_redirects=False,
                        proxy=proxy.url if proxy is not None else None,
                        proxy_headers=_proxy_headers(proxy),
                    ) as response:
                        if response.status in (301, 302, 303, 307, 308) and (
                            location := response.headers.get("location")
                        ):
                            target = fence.target(_join(target, location))
                            method = "GET" if response.status == 303 else method
                            continue
                        return await _describe(response)
                except aiohttp.ClientConnectorError as exc:
                    if isinstance(exc.__cause__, ToolError):
                        raise exc.__cause__ from None
                    raise ToolError(f"cannot connect: {exc.os_error}") from None
                except aiohttp.InvalidURL as exc:
                    raise ToolError(f"refused: {exc}") from None
                except (TimeoutError, aiohttp.ClientError) as exc:
                    raise ToolError(f"request failed: {type(exc).__name__}: {exc}") from None
        raise ToolError(f"more than {MAX_REDIRECTS} redirects")

    def label(self, arguments: Json) -> str:
        method = str(arguments.get("method") or "GET").upper()
        return f"{method} {str(arguments.get('url', ''))[:100]}"

    def repeatable(self, arguments: Json) -> bool:
        return str(arguments.get("method") or "GET").upper() == "GET"


def _proxy_headers(proxy: Proxy | None) -> dict[str, str] | None:
    if proxy is None or proxy.authorization is None:
        return None
    return {"Proxy-Authorization": proxy.authorization}


def _join(base: URL, location: str) -> URL:
    try:
        return base.join(URL(location))
    except (ValueError, TypeError, UnicodeError) as exc:
        raise ToolError(f"bad redirect location: {exc}") from None


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
