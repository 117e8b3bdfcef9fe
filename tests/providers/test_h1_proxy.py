"""The upstream client through a real egress proxy (tinyproxy) on loopback: an ``https``
upstream through a CONNECT tunnel, an ``http`` one by its absolute URL, the proxy's
credentials sent, and a proxy that refuses or does not answer named as the cause."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from headend.providers.h1 import ConnectFailed, H1Client
from headend.proxies import Proxy, parse_proxy
from tests.conftest import free_port
from tests.providers.test_h1 import BODY, answer, certificate, upstream
from tests.proxy_server import RunningProxy


def keep_answering(server_box: list[object], body: bytes) -> object:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        server = server_box[0]
        while await server.request(reader) is not None:  # type: ignore[attr-defined]
            writer.write(answer(body))

    return handler


async def test_https_goes_through_a_connect_tunnel(tinyproxy: RunningProxy, tmp_path: Path) -> None:
    cert, key = certificate(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    box: list[object] = []
    async with upstream(keep_answering(box, b"through"), tls) as (server, url):  # type: ignore[arg-type]
        box.append(server)
        client = H1Client(ssl_context=ssl.create_default_context(cafile=str(cert)))
        proxy = parse_proxy(tinyproxy.url)
        for _ in range(3):  # the tunnel is kept alive and reused
            async with await client.request(url, BODY, {}, 5, proxy) as response:
                assert response.status == 200
                assert await response.read() == b"through"
        await client.close()
    assert server.connections == 1
    assert len(server.requests) == 3
    head = server.requests[0][0]
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1")  # TLS inside: origin-form
    port = url.split(":")[2].split("/")[0]
    assert tinyproxy.forwarded(f"CONNECT localhost:{port}") == 1


async def test_http_goes_to_the_proxy_by_its_absolute_url(tinyproxy: RunningProxy) -> None:
    box: list[object] = []
    async with upstream(keep_answering(box, b"forwarded")) as (server, url):  # type: ignore[arg-type]
        box.append(server)
        client = H1Client()
        async with await client.request(url, BODY, {}, 5, parse_proxy(tinyproxy.url)) as response:
            assert await response.read() == b"forwarded"
        await client.close()
    head = server.requests[0][0].lower()
    assert b"via: 1.1 " in head  # tinyproxy's mark: it went through the proxy
    assert tinyproxy.forwarded(f"POST {url}") == 1


async def test_credentials_in_the_proxy_url_are_sent_to_the_proxy_only() -> None:
    seen: list[bytes] = []

    async def fake_proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    listening = await asyncio.start_server(fake_proxy, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    proxy = parse_proxy(f"http://ops:s%40cret@127.0.0.1:{port}")
    assert proxy.shown == f"http://…@127.0.0.1:{port}"
    with pytest.raises(ConnectFailed, match=r"the proxy refused the tunnel: HTTP/1\.1 407") as info:
        await H1Client().request("https://api.example.com/v1/x", BODY, {}, 5, proxy)
    assert "s@cret" not in str(info.value)
    assert "ops" not in str(info.value)
    assert b"CONNECT api.example.com:443 HTTP/1.1" in seen[0]
    assert b"proxy-authorization: Basic b3BzOnNAY3JldA==" in seen[0]  # ops:s@cret
    listening.close()


async def test_a_proxy_that_refuses_or_is_not_there_is_named(refusing: RunningProxy) -> None:
    with pytest.raises(ConnectFailed, match=r"the proxy refused the tunnel: HTTP/1\.0 403"):
        await H1Client().request("https://localhost:9/v1", BODY, {}, 5, parse_proxy(refusing.url))
    nobody = Proxy("127.0.0.1", free_port(), None, "http://127.0.0.1")
    with pytest.raises(ConnectFailed, match="cannot connect to the proxy: Connection refused"):
        await H1Client().request("https://localhost:9/v1", BODY, {}, 5, nobody)
