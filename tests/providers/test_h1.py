"""The upstream HTTP/1.1 client against real servers on loopback, each scripted to answer
the way an upstream can: kept alive or not, chunked, compressed, cut off, dropped while idle."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from headend.providers.h1 import ConnectFailed, ConnectionDropped, H1Client

BODY = b'{"model": "m", "messages": []}'
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class Upstream:
    """A raw HTTP server: ``handler(reader, writer, n)`` answers the n-th connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []  # head, body

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def request(self, reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
        """The next request on a connection, None once the client closed it."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = await reader.readexactly(length)
        self.requests.append((head, body))
        return head, body


@asynccontextmanager
async def upstream(
    handler: Handler, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[Upstream, str]]:
    server = Upstream(handler)
    listening = await asyncio.start_server(server.serve, "127.0.0.1", 0, ssl=tls)
    port = listening.sockets[0].getsockname()[1]
    scheme = "https" if tls else "http"
    try:
        yield server, f"{scheme}://localhost:{port}/v1/chat/completions"
    finally:
        listening.close()


def answer(body: bytes, *headers: bytes) -> bytes:
    head = [b"HTTP/1.1 200 OK", b"content-type: application/json", *headers]
    head.append(b"content-length: %d" % len(body))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


async def test_keeps_the_connection_alive_and_sends_a_proper_request() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while await server.request(reader) is not None:
            writer.write(answer(b'{"ok": %d}' % len(server.requests)))

    async with upstream(handler) as (server, url):
        client = H1Client("headend/test")
        for expected in (b'{"ok": 1}', b'{"ok": 2}'):
            async with await client.request(
                url, BODY, {"authorization": "Bearer sk-up"}
            ) as response:
                assert response.status == 200
                assert response.headers["content-type"] == "application/json"
                assert await response.read() == expected
        await client.close()
    assert server.connections == 1
    head, body = server.requests[0]
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/chat/completions HTTP/1.1"
    assert f"host: localhost:{url.split(':')[2].split('/')[0]}" in lines
    assert "authorization: Bearer sk-up" in lines
    assert "user-agent: headend/test" in lines
    assert body == BODY


async def test_a_chunked_answer_arrives_as_it_is_sent() -> None:
    more = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await server.request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        writer.write(b"d\r\ndata: first\n\n\r\n")
        await writer.drain()
        await more.wait()
        writer.write(b"e\r\ndata: second\n\n\r\n0\r\n\r\n")

    async with upstream(handler) as (server, url):
        client = H1Client()
        async with await client.request(url, BODY, {}) as response:
            assert await response.readany() == b"data: first\n\n"  # before the rest exists
            more.set()
            assert await response.readany() == b"data: second\n\n"
            assert await response.readany() == b""
        await client.close()


async def test_an_answer_without_length_is_read_until_the_connection_closes() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await server.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it")
        await writer.drain()

    async with upstream(handler) as (server, url):
        client = H1Client()
        for _ in range(2):
            async with await client.request(url, BODY, {}) as response:
                assert await response.read() == b"all of it"
        await client.close()
    assert server.connections == 2  # such a connection cannot be used again


async def test_a_compressed_answer_is_decoded() -> None:
    text = b'{"choices": []}' * 200

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await server.request(reader)
        writer.write(answer(gzip.compress(text), b"content-encoding: gzip"))

    async with upstream(handler) as (server, url):
        client = H1Client()
        async with await client.request(url, BODY, {}) as response:
            assert await response.read() == text
        await client.close()
    assert b"accept-encoding: identity" in server.requests[0][0]


async def test_a_compressed_answer_that_expands_too_far_fails_naming_why() -> None:
    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024), compresslevel=9)  # 8 MiB in ~8 kB
    assert len(bomb) < 64 * 1024

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await server.request(reader)
        writer.write(answer(bomb, b"content-encoding: gzip"))

    async with upstream(handler) as (server, url):
        client = H1Client(max_decoded=2 * 1024 * 1024)
        response = await client.request(url, BODY, {})
        with pytest.raises(ConnectionDropped, match="expands past 2 MiB decompressed"):
            await response.read()
        response.close()
        # Up to the limit, the same answer is whole.
        roomy = H1Client(max_decoded=16 * 1024 * 1024)
        async with await roomy.request(url, BODY, {}) as whole:
            assert len(await whole.read()) == 8 * 1024 * 1024
        await client.close()
        await roomy.close()


async def test_a_request_on_a_connection_dropped_while_idle_is_sent_again() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await server.request(reader)
        writer.write(answer(b"one"))
        await writer.drain()
        if n == 1:
            await server.request(reader)  # the server had given up on it: no answer
            return
        while await server.request(reader) is not None:
            writer.write(answer(b"again"))

    async with upstream(handler) as (server, url):
        client = H1Client()
        async with await client.request(url, BODY, {}) as response:
            assert await response.read() == b"one"
        async with await client.request(url, BODY, {}) as response:
            assert await response.read() == b"one"  # the second connection's first answer
        await client.close()
    assert server.connections == 2


async def test_an_answer_cut_off_is_an_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await server.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
        await writer.drain()

    async with upstream(handler) as (server, url):
        client = H1Client()
        async with await client.request(url, BODY, {}) as response:
            with pytest.raises(ConnectionDropped):
                await response.read()
        await client.close()


async def test_an_answer_left_unread_takes_its_connection_down() -> None:
    hung_up: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await server.request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n"
        )  # and never the end
        await writer.drain()
        await reader.read()  # until the client hangs up
        hung_up.append(n)

    async with upstream(handler) as (server, url):
        client = H1Client()
        for _ in range(2):
            async with await client.request(url, BODY, {}) as response:
                assert await response.readany() == b"first"
        await client.close()
        await asyncio.sleep(0.1)
    assert server.connections == 2
    assert hung_up == [1, 2]  # each closed as soon as its reader was done with it


async def test_a_reader_that_falls_behind_holds_the_upstream_back() -> None:
    payload = bytes(range(256)) * 131072  # 32 MiB: more than loopback's socket buffers
    sent = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await server.request(reader)
        writer.write(answer(payload))
        await writer.drain()
        sent.set()

    async with upstream(handler) as (server, url):
        client = H1Client()
        async with await client.request(url, BODY, {}) as response:
            await asyncio.sleep(0.5)
            assert not sent.is_set()  # the client stopped reading instead of buffering it all
            received = bytearray()
            while data := await response.readany():
                received += data
        assert bytes(received) == payload
        await client.close()


async def test_a_request_given_up_while_waiting_closes_its_connection() -> None:
    hung_up = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await server.request(reader)
        await reader.read()  # no answer; returns when the client closes
        hung_up.set()

    async with upstream(handler) as (server, url):
        client = H1Client()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await client.request(url, BODY, {})
        await asyncio.wait_for(hung_up.wait(), 5)
        await client.close()


async def test_an_interim_answer_is_skipped() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await server.request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b"final"))

    async with upstream(handler) as (server, url):
        client = H1Client()
        async with await client.request(url, BODY, {}) as response:
            assert response.status == 200
            assert await response.read() == b"final"
        await client.close()


async def test_an_error_status_comes_with_its_headers_and_body() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await server.request(reader)
        writer.write(
            b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 3\r\ncontent-length: 4\r\n\r\nslow"
        )

    async with upstream(handler) as (server, url):
        client = H1Client()
        async with await client.request(url, BODY, {}) as response:
            assert response.status == 429
            assert response.headers["retry-after"] == "3"
            assert await response.read() == b"slow"
        await client.close()


async def test_nothing_listening_is_connect_failed() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        return None

    async with upstream(handler) as (_server, url):
        pass  # closed: its port now refuses
    client = H1Client()
    with pytest.raises(ConnectFailed):
        async with await client.request(url, BODY, {}):
            pass


async def test_a_header_value_with_a_line_break_is_refused() -> None:
    client = H1Client()
    with pytest.raises(ValueError, match="line break"):
        async with await client.request(
            "http://127.0.0.1:9/v1", BODY, {"x-evil": "a\r\nhost: other"}
        ):
            pass


def certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_https_checks_the_certificate(tmp_path: Path) -> None:
    cert, key = certificate(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while await server.request(reader) is not None:
            writer.write(answer(b"secret"))

    async with upstream(handler, tls) as (server, url):
        trusting = H1Client(ssl_context=ssl.create_default_context(cafile=str(cert)))
        async with await trusting.request(url, BODY, {}) as response:
            assert await response.read() == b"secret"
        await trusting.close()
        with pytest.raises(ConnectFailed, match="TLS"):
            async with await H1Client().request(url, BODY, {}):  # the system's CAs: not this one
                pass
