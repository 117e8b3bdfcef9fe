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
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from headend.errors import APIError
from headend.observability.logs import current_request
from headend.observability.tracing import Tracing, TracingOff
from headend.server.error_shapes import envelope_for, send_error
from headend.server.observer import EXACT, RequestObserver, surface_of
from headend.server.request_record import STATE_KEY, RequestContext, context_of

log = logging.getLogger(__name__)

UNTRACED_SURFACES = frozenset({"health", "metrics"})  # probes and scrapes: noise in traces
_CLIENT_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


class RequestIds:
    """Unique across processes (a random prefix each) and cheap: no syscall per request."""

    def __init__(self) -> None:
        self._prefix = f"req_{os.urandom(8).hex()}"
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):08x}"


SOCKET_RECORDS = "socket_records"  # where a WebSocket's scope keeps its ``SocketRecords``
SOCKET_SURFACE = "responses_websocket"  # its responses, apart from those over HTTP


class SocketRecords:
    """A WebSocket's responses, each one a request to the metrics, the access log and the
    traces (``WS /v1/responses`` in the access line, surface ``responses_websocket``): the
    middleware, which has the observer and the tracing, puts one in the socket's scope; the
    socket's handler opens and closes a record per response."""

    def __init__(
        self,
        scope: Scope,
        observer: RequestObserver | None,
        tracing: Tracing,
        new_id: RequestIds,
    ) -> None:
        self.observer = observer
        self.tracing = tracing
        self.new_id = new_id
        self.path = scope["path"]
        self.headers = scope["headers"]
        self.seen = {"method": "WS", "path": self.path}  # as the access line shows it

    def open(self, key_id: str | None) -> RequestContext:
        context = RequestContext(request_id=self.new_id(), surface=SOCKET_SURFACE)
        context.key_id = key_id
        context.streaming = True
        context.span = self.tracing.request(
            "GET", self.path, self.headers, context.request_id, self.path in EXACT
        )
        if self.observer is not None:
            self.observer.stream_started(context)
        return context

    def close(self, context: RequestContext, status: int) -> None:
        context.status = status
        if self.observer is not None:
            self.observer.finished(context, self.seen)


async def refuse(scope: Scope, send: Send, error: APIError) -> None:
    """Answer ``error`` from a middleware (before any route runs), in the path's envelope,
    noted on the request's context for the metrics and the access line."""
    context = context_of(scope)
    if context is not None:
        context.error = error
    await send_error(send, error, envelope_for(scope["path"]))


def _client_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id" and _CLIENT_ID.match(value):
            client_id: str = value.decode()
            return client_id
    return None


def _is_event_stream(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"content-type":
            return value.startswith(b"text/event-stream")
    return False


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        observer: RequestObserver | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.app = app
        self.observer = observer
        self.tracing = tracing or TracingOff()
        self._new_id = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                records = SocketRecords(scope, self.observer, self.tracing, self._new_id)
                scope.setdefault("state", {})[SOCKET_RECORDS] = records
            await self.app(scope, receive, send)
            return
        context = RequestContext(
            request_id=_client_request_id(scope) or self._new_id(),
            surface=surface_of(scope["path"]),
        )
        if context.surface not in UNTRACED_SURFACES:
            path = scope["path"]
            context.span = self.tracing.request(
                scope["method"], path, scope["headers"], context.request_id, path in EXACT
            )
        scope.setdefault("state", {})[STATE_KEY] = context
        request_id = context.request_id.encode()
        current = current_request.set(context.request_id)
        observer = self.observer

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                context.status = message["status"]
                overhead = f"{context.timer.overhead_ms():.3f}".encode()
                headers = message.get("headers", ())
                message["headers"] = [
                    *headers,
                    (b"x-request-id", request_id),
                    (b"x-headend-overhead-ms", overhead),
                ]
                if observer is not None and _is_event_stream(headers):
                    context.streaming = True
                    observer.stream_started(context)
            elif context.streaming and context.first_event is None:
                body = message.get("body", b"")
                if body and not body.startswith(b":"):  # a comment is a keepalive, not an event
                    context.first_event = time.perf_counter()
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            log.error("unhandled error in request %s", context.request_id, exc_info=exc)
            if not context.status:  # once the answer has started the server closes it unfinished
                error = APIError("The server had an error while processing your request.")
                context.error = error
                await send_error(send_with_headers, error, envelope_for(scope["path"]))
        finally:
            if observer is not None:
                observer.finished(context, scope)
            current_request.reset(current)
