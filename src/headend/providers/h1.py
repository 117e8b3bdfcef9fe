"""A lean HTTP/1.1 client for upstream model APIs: pooled keep-alive connections, bodies
streamed as they arrive.

Why not aiohttp's ClientSession: on the gateway's hot path it cost more CPU per request
than everything else headend does around it (bench/README.md, "The gateway at the
ceiling"). Upstream model APIs need little of it, so this is all there is: ``POST`` with a
body, answers with ``Content-Length``, chunked or read-to-close bodies (httptools parses,
as in uvicorn), gzip or deflate content encodings, ``http`` and ``https`` (the system's CA
store, SNI, ALPN ``http/1.1``), through an ``http://`` egress proxy when given one (a CONNECT
tunnel for ``https``, the absolute URL for ``http``; ``headend.proxies`` picks it). No
redirects or cookies: the upstream is configured.

Errors are ``ConnectionError``s (``ConnectFailed`` when no connection could be made, a
proxy's refusal included) or a ``TimeoutError`` when connecting took longer than asked. A
request that finds its reused connection closed before any answer (the server dropped it
while idle) is sent once more on a new connection, as browsers and aiohttp do.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import cast
from urllib.parse import urlsplit

import httptools

from headend.proxies import Proxy

HIGH_WATER = 1024 * 1024  # buffered answer bytes at which reading from the socket pauses
MAX_DECODED = 128 * 1024 * 1024  # what a compressed answer may expand to (a zip bomb stops)
DECODE_STEP = 64 * 1024  # decompressed at a time, so no single step allocates more
KEEP_IDLE = 60.0  # seconds an idle connection is kept for reuse
MAX_IDLE = 256  # idle connections kept per origin


class ConnectFailed(ConnectionError):
    """No connection to the upstream could be made."""


class ConnectionDropped(ConnectionError):
    """The connection ended before the answer did."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a URL's requests go, parsed once."""

    origin: tuple[str, str, int]  # scheme, host, port
    path: bytes
    host_header: bytes
    absolute: bytes  # the whole URL: what an http:// request through a proxy names


def parse_target(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    default = 443 if parts.scheme == "https" else 80
    port = parts.port or default
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = (shown if port == default else f"{shown}:{port}").encode("idna")
    return Target(
        (parts.scheme, host, port),
        path.encode("ascii"),
        host_header,
        parts.scheme.encode() + b"://" + host_header + path.encode("ascii"),
    )


class Response:
    """An answer's status and headers; its body as it arrives (``readany``) or whole."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self.status = 0
        self.headers: dict[str, str] = {}  # names lower-cased; repeated ones joined by ", "
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._complete = False
        self._error: BaseException | None = None

    async def readany(self) -> bytes:
        """What has arrived since the last call (waiting for some), b"" once it is all read."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._complete:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        self._connection.resume()
        return data

    async def read(self) -> bytes:
        parts = []
        while data := await self.readany():
            parts.append(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Done with it: an answer not read to its end takes its connection down with it."""
        if not self._complete:
            self._connection.abort()

    # fed by the connection
    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER:
            self._connection.pause()
        self._wake()

    def _finish(self, error: BaseException | None = None) -> None:
        if not self._complete and self._error is None:
            if error is None:
                self._complete = True
            else:
                self._error = error
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class _Connection(asyncio.Protocol):
    """One socket to an origin, one request at a time."""

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._response: Response | None = None
        self._head: asyncio.Future[Response] | None = None
        self._decoder: zlib._Decompress | None = None
        self._decoded = 0  # bytes the decoder has given for the current answer
        self.answered = False  # any byte of the current answer has come
        self._until_close = False  # the answer's body ends with the connection
        self._paused = False
        self.closed = False
        self.idle_since = 0.0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ConnectionDropped("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(ConnectionDropped(f"malformed HTTP answer: {exc}"))

    def eof_received(self) -> bool:
        return False  # close: a half-closed connection is no use to a client

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response = self._response
        if self._until_close and exc is None and response is not None:
            self._response = self._head = None
            self._flush(response)
            response._finish()
            return
        self._fail(ConnectionDropped("the upstream closed the connection"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._response is not None
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers = self._response.headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        response = self._response
        assert response is not None
        assert self._head is not None
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer: the real one follows
            response.headers = {}
            return
        response.status = status
        headers = response.headers
        self._until_close = (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
            and status not in (204, 304)
        )
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # either, by its header
            self._decoded = 0
        if not self._head.done():
            self._head.set_result(response)

    def on_body(self, body: bytes) -> None:
        if self._response is None:
            return  # failed already (it expanded too far): the rest is no one's
        if self._decoder is None:
            self._response._feed(body)
            return
        while body:
            out = self._decoder.decompress(body, DECODE_STEP)
            body = self._decoder.unconsumed_tail
            if not out:
                continue
            self._decoded += len(out)
            if self._decoded > self._pool.max_decoded:
                limit = self._pool.max_decoded // (1024 * 1024)
                self._fail(ConnectionDropped(f"the answer expands past {limit} MiB decompressed"))
                return
            self._response._feed(out)

    def on_message_complete(self) -> None:
        response = self._response
        if response is None or response.status == 0:
            return  # the end of an interim answer
        self._flush(response)
        self._response = None
        self._head = None
        response._finish()
        if self._parser.should_keep_alive() and not self.closed:
            self.resume()
            self._pool.release(self)
        else:
            self.abort()

    def _flush(self, response: Response) -> None:
        if self._decoder is not None:
            rest = self._decoder.flush()
            if rest:
                response._feed(rest)
            self._decoder = None

    # used by the client and the response
    def send(self, head: bytes, body: bytes) -> asyncio.Future[Response]:
        assert self._transport is not None
        self._response = Response(self)
        self._head = asyncio.get_running_loop().create_future()
        self.answered = False
        self._transport.writelines((head, body))
        return self._head

    def pause(self) -> None:
        if not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self._transport is not None and not self.closed:
            self._paused = False
            self._transport.resume_reading()

    def abort(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    def _fail(self, error: BaseException) -> None:
        self.closed = True
        head, response = self._head, self._response
        self._head = self._response = None
        if head is not None and not head.done():
            head.set_exception(error)
        if response is not None:
            response._finish(error)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()


def _why(error: OSError) -> str:
    """What went wrong, without the address (asyncio's "Connect call failed ('10.0.0.5',
    443)" names it, and messages never name the upstream)."""
    return os.strerror(error.errno) if error.errno else type(error).__name__


class _Tunnel(asyncio.Protocol):
    """A proxy's answer to CONNECT: its head, once it has all come."""

    def __init__(self) -> None:
        self.head: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._data = b""

    def data_received(self, data: bytes) -> None:
        self._data += data
        if b"\r\n\r\n" in self._data and not self.head.done():
            self.head.set_result(self._data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.head.done():
            self.head.set_exception(ConnectFailed("the proxy closed the connection"))


class _Pool:
    """The idle connections to one origin (through one proxy, or none)."""

    def __init__(
        self,
        origin: tuple[str, str, int],
        ssl_context: ssl.SSLContext | None,
        proxy: Proxy | None = None,
        max_decoded: int = MAX_DECODED,
    ) -> None:
        self.origin = origin
        self._ssl = ssl_context
        self.proxy = proxy
        self.max_decoded = max_decoded
        self._idle: deque[_Connection] = deque()

    def take(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()  # the most recently used: likeliest still open
            if not connection.closed and now - connection.idle_since < KEEP_IDLE:
                return connection
            connection.abort()
        return None

    async def open(self, connect_timeout: float | None) -> _Connection:
        scheme, host, port = self.origin
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_timeout):
                if self.proxy is not None:
                    return await self._through_proxy(self.proxy)
                _, connection = await loop.create_connection(
                    lambda: _Connection(self),
                    host,
                    port,
                    ssl=self._ssl if scheme == "https" else None,
                    server_hostname=host if scheme == "https" else None,
                )
        except ConnectFailed:  # said already (by the proxy's part)
            raise
        except ssl.SSLError as exc:  # an OSError too
            raise ConnectFailed(f"TLS failed: {exc.reason or exc}") from exc
        except OSError as exc:
            raise ConnectFailed(f"cannot connect: {_why(exc)}") from exc
        return connection

    async def _through_proxy(self, proxy: Proxy) -> _Connection:
        """A connection to the proxy: for ``https`` a tunnel through it (CONNECT), then TLS
        with the origin; for ``http`` the proxy itself, asked for absolute URLs."""
        scheme, host, port = self.origin
        loop = asyncio.get_running_loop()
        if scheme == "http":
            try:
                _, connection = await loop.create_connection(
                    lambda: _Connection(self), proxy.host, proxy.port
                )
            except OSError as exc:
                raise ConnectFailed(f"cannot connect to the proxy: {_why(exc)}") from exc
            return connection
        try:
            transport, tunnel = await loop.create_connection(_Tunnel, proxy.host, proxy.port)
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to the proxy: {_why(exc)}") from exc
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = [f"CONNECT {authority} HTTP/1.1", f"host: {authority}"]
        if proxy.authorization is not None:
            lines.append(f"proxy-authorization: {proxy.authorization}")
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            head = await tunnel.head
        except BaseException:
            transport.abort()
            raise
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        fields = status_line.split(" ", 2)
        if len(fields) < 2 or fields[1] != "200":
            transport.abort()
            raise ConnectFailed(f"the proxy refused the tunnel: {status_line}")
        connection = _Connection(self)
        assert self._ssl is not None  # an https origin's pool has its context
        try:
            secured = await loop.start_tls(transport, connection, self._ssl, server_hostname=host)
        except BaseException:
            transport.abort()
            raise
        if secured is None:  # the loop gave no transport back: nothing to talk over
            raise ConnectFailed("TLS through the proxy failed")
        connection.connection_made(secured)
        return connection

    def release(self, connection: _Connection) -> None:
        if len(self._idle) >= MAX_IDLE:
            connection.abort()
            return
        connection.idle_since = time.monotonic()
        self._idle.append(connection)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().abort()


class H1Client:
    """Pools by origin; one per app, built in the lifespan and closed with it.

    ``async with await client.request(url, body, headers) as response:`` closes the
    response on the way out."""

    def __init__(
        self,
        user_agent: str = "headend",
        ssl_context: ssl.SSLContext | None = None,
        max_decoded: int = MAX_DECODED,
    ) -> None:
        """``ssl_context``: the system's CA store unless given; ``max_decoded``: the most a
        compressed answer may expand to (past it the answer fails, naming why)."""
        self._max_decoded = max_decoded
        self._pools: dict[tuple[tuple[str, str, int], Proxy | None], _Pool] = {}
        self._targets: dict[str, Target] = {}
        self._ssl = ssl_context
        self._user_agent = user_agent.encode("latin-1")

    async def request(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        connect_timeout: float | None = None,
        proxy: Proxy | None = None,
    ) -> Response:
        """POST ``body`` (through ``proxy`` when given); the response once its status line
        and headers have come."""
        target = self._targets.get(url)
        if target is None:
            target = self._targets[url] = parse_target(url)
        key = (target.origin, proxy)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(
                target.origin, self._ssl_for(target), proxy, self._max_decoded
            )
        forwarded = proxy is not None and target.origin[0] == "http"
        head = self._head(target, headers, len(body), proxy if forwarded else None)
        connection = pool.take()
        if connection is not None:
            try:
                return await self._exchange(connection, head, body)
            except ConnectionDropped:
                if connection.answered:
                    raise
                # dropped while idle, before a byte of an answer: send it on a new one
        connection = await pool.open(connect_timeout)
        return await self._exchange(connection, head, body)

    @staticmethod
    async def _exchange(connection: _Connection, head: bytes, body: bytes) -> Response:
        try:
            return await connection.send(head, body)
        except BaseException:
            connection.abort()  # cancelled while waiting (a timeout): its answer is no one's
            raise

    def _head(
        self, target: Target, headers: Mapping[str, str], length: int, proxy: Proxy | None
    ) -> bytes:
        """The request's head; ``proxy``: an http:// request forwarded by it (the absolute
        URL, and the proxy's credentials)."""
        lines = [
            b"POST " + (target.absolute if proxy else target.path) + b" HTTP/1.1",
            b"host: " + target.host_header,
            b"user-agent: " + self._user_agent,
            b"accept-encoding: identity",
            b"content-length: " + str(length).encode(),
        ]
        if proxy is not None and proxy.authorization is not None:
            lines.append(b"proxy-authorization: " + proxy.authorization.encode("latin-1"))
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                raise ValueError(f"header {name!r} holds a line break or a colon")
            lines.append(f"{name}: {value}".encode("latin-1"))
        lines.append(b"\r\n")
        return b"\r\n".join(lines)

    def _ssl_for(self, target: Target) -> ssl.SSLContext | None:
        if target.origin[0] != "https":
            return None
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
            self._ssl.set_alpn_protocols(["http/1.1"])
        return self._ssl

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
