"""A bug in a handler still answers like headend: the surface's envelope, the request id, and
a connection the client can keep using (served by uvicorn with headend's own protocol)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from headend.config import ServerSettings
from headend.server.context import RequestContextMiddleware
from headend.server.error_handlers import EXCEPTION_HANDLERS
from headend.server.ingress import uvicorn_options
from tests.conftest import free_port


async def broken(request: Request) -> Response:
    raise RuntimeError("secret internals that must not reach the client")


APP = Starlette(
    routes=[
        Route("/v1/broken", broken, methods=["GET"]),
        Route("/v1/messages", broken, methods=["GET"]),
    ],
    exception_handlers=EXCEPTION_HANDLERS,
    middleware=[Middleware(RequestContextMiddleware)],
)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    chosen = free_port()
    config = uvicorn.Config(
        APP,
        host="127.0.0.1",
        port=chosen,
        log_level="critical",
        **uvicorn_options(ServerSettings()),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=asyncio.run, args=(server.serve(),), daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.02)
    yield chosen
    server.should_exit = True
    thread.join(5)


def exchange(sock: socket.socket, path: str) -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Request-Id: probe-1\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        head += chunk
    headers, _, body = head.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1]
            for line in headers.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
    )
    while len(body) < length:
        body += sock.recv(65536)
    return headers + b"\r\n\r\n" + body


def test_a_bug_answers_500_in_the_envelope_and_keeps_the_connection(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for path, marker in (
            ("/v1/broken", b'"type":"server_error"'),
            ("/v1/messages", b'{"type":"error","error":{"type":"api_error"'),
            ("/v1/broken", b'"code":null'),  # the same connection, still answering
        ):
            answer = exchange(sock, path)
            assert answer.startswith(b"HTTP/1.1 500 ")
            assert b"x-request-id: probe-1" in answer
            assert b"connection: close" not in answer.lower()
            assert marker in answer
            assert b"secret internals" not in answer
