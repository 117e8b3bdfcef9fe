"""Per-request context: the request id and the timer behind ``x-headend-overhead-ms``.

A pure ASGI middleware (no per-request task or body buffering, unlike Starlette's
BaseHTTPMiddleware) puts it in ``scope["state"]`` and adds both headers to every response.
It is also the last stop for a bug: an unexpected exception is logged with the request id
and answered with a 500 in the surface's envelope, and the connection stays usable (an
exception left to the server would close it without ``Connection: close``).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from headend.errors import APIError
from headend.providers.base import Timer
from headend.server.error_shapes import envelope_for, send_error

log = logging.getLogger(__name__)

STATE_KEY = "headend"
_CLIENT_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


class RequestIds:
    """Unique across processes (a random prefix each) and cheap: no syscall per request."""

    def __init__(self) -> None:
        self._prefix = f"req_{os.urandom(8).hex()}"
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):08x}"


@dataclass(slots=True)
class RequestContext:
    request_id: str
    timer: Timer = field(default_factory=Timer)


def request_context(request: Request) -> RequestContext:
    found: RequestContext = request.scope["state"][STATE_KEY]
    return found


def _client_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id" and _CLIENT_ID.match(value):
            client_id: str = value.decode()
            return client_id
    return None


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._new_id = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = RequestContext(request_id=_client_request_id(scope) or self._new_id())
        scope.setdefault("state", {})[STATE_KEY] = context
        request_id = context.request_id.encode()

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                overhead = f"{context.timer.overhead_ms():.3f}".encode()
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", request_id),
                    (b"x-headend-overhead-ms", overhead),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            log.error("unhandled error in request %s", context.request_id, exc_info=exc)
            if started:  # too late for a status: the unfinished response makes the server close
                return
            error = APIError("The server had an error while processing your request.")
            await send_error(send_with_headers, error, envelope_for(scope["path"]))
