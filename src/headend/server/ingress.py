"""The way in: limits and deadlines on every connection, before any request reaches the app.

uvicorn's httptools protocol waits for a request's headers and body as long as the client
likes and takes headers of any size. ``guarded_protocol`` adds, per connection:

- a header budget: the request line and headers together at most ``max_header_bytes``, and
  at most ``max_headers`` of them; over either, 431 and the connection closes;
- a header deadline: a request's head must arrive within ``header_timeout`` seconds of its
  first byte, else 408 and close (what a slow-loris client gets);
- a body deadline: the body must arrive within ``body_timeout`` seconds of the head, else
  408 (or, once the answer has started, a close);
- an idle deadline: a connection with no request in flight closes after ``idle_timeout``
  seconds, a new connection that sends nothing included.

A WebSocket upgrade (the Responses API's WebSocket mode) leaves these deadlines behind with
the HTTP protocol: the socket is the WebSocket protocol's, its frames bounded by
``max_body_bytes`` and its liveness kept by pings. On a drain, uvicorn's WebSocket protocol
would close every socket at once (1012), cutting the response under way; headend's tells
the app instead (``DRAIN``), which lets that response end and then closes the socket.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from headend.config import ServerSettings
from headend.errors import APIError, HeadersTooLarge, RequestTimeout
from headend.server.cancel import DISCONNECT, Disconnect
from headend.server.coalesce import Coalesced
from headend.server.error_shapes import envelope_for

LINGER_SECONDS = 2.0


class _Refused(httptools.HttpParserError):
    """Stops the parser: the connection has been answered and is closing."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    limits: ServerSettings  # set on the subclass that ``guarded_protocol`` makes

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_bytes = 0
        self._header_count = 0
        self._in_head = False
        self._refused = False
        self._deadline: asyncio.TimerHandle | None = None
        self._expires_at: float | None = None
        self._expiry: str | None = None  # None: the idle deadline, which closes quietly
        self._disconnect = Disconnect()  # one per connection: its requests go with it
        self._extensions: dict[str, dict[object, object]] = {
            DISCONNECT: {"signal": self._disconnect}
        }

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._out = Coalesced(transport, self.loop)
        super().connection_made(self._out)
        # Nothing sent yet counts as idle: it closes like any idle connection.
        self._arm(self.timeout_keep_alive, None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)
        self._disconnect.fire()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self._in_head and not self._refused:
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(
                    HeadersTooLarge(f"Request headers exceed {self.limits.max_header_bytes} bytes.")
                )

    def _unsupported_upgrade_warning(self) -> None:
        """An upgrade to anything but WebSocket is answered as HTTP (426 where it matters)."""

    def handle_websocket_upgrade(self) -> None:
        """The socket goes to the WebSocket protocol, without this connection's deadlines and
        with the transport itself (frames are written as they come, not gathered)."""
        self._stop_timer()
        self._out.flush()
        self.transport = self._out.raw
        super().handle_websocket_upgrade()

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # a refusal already answered; the parser error is ours
            super().send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = self._extensions
        self._in_head = True
        self._head_bytes = 0
        self._header_count = 0
        self._arm(self.limits.header_timeout, "Request headers were not received in time.")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._refuse(HeadersTooLarge(f"More than {self.limits.max_headers} request headers."))
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._arm(self.limits.body_timeout, "The request body was not received in time.")
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        """uvicorn's, with the idle deadline on the connection's one timer (uvicorn makes
        and cancels a loop timer per request for it)."""
        self._out.flush()  # the answer's last bytes need not wait for the loop's turn
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._arm(self.timeout_keep_alive, None)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self, seconds: float, message: str | None) -> None:
        """The deadline for what the connection waits for now. Re-arming is two stores:
        one loop timer per connection stays behind the deadline and, when it fires early,
        follows it (creating and cancelling a timer twice per request cost more)."""
        expires = self.loop.time() + seconds
        self._expires_at, self._expiry = expires, message
        timer = self._deadline
        if timer is None or timer.when() > expires:
            if timer is not None:
                timer.cancel()
            self._deadline = self.loop.call_at(expires, self._check)

    def _disarm(self) -> None:
        self._expires_at = None

    def _stop_timer(self) -> None:
        self._disarm()
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _check(self) -> None:
        self._deadline = None
        expires = self._expires_at
        if expires is None:
            return
        if self.loop.time() < expires:
            self._deadline = self.loop.call_at(expires, self._check)
            return
        self._disarm()
        self._expire(self._expiry)

    def _expire(self, message: str | None) -> None:
        if message is None:  # idle: nothing to answer
            self.transport.close()
            return
        cycle = self.cycle
        if cycle is not None and not self._in_head and cycle.response_started:
            self.transport.close()  # the answer is under way: a status can no longer be sent
            return
        self._refuse(RequestTimeout(message))

    def _refuse(self, error: APIError) -> None:
        """Answer the error in its surface's envelope and close the connection."""
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self._disarm()
        path = "/" if self._in_head or self.cycle is None else self.cycle.scope["path"]
        body = orjson.dumps(envelope_for(path)(error))
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[error.status],
                    b"content-type: application/json\r\n",
                    b"content-length: " + str(len(body)).encode() + b"\r\n",
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )
        # Lingering close: a client still sending would get a reset, and lose this answer,
        # if the socket closed with its data unread. Send FIN, read and drop, close soon.
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()


DRAIN = "headend.websocket.drain"  # an ASGI message of headend's: the server is stopping


class DrainingWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, but a shutdown is told to the app (``DRAIN`` in
    its receive queue) when the socket is open: the app closes the socket when its response
    under way has ended. What is still running when the drain's time is up, uvicorn cancels."""

    def shutdown(self) -> None:
        if self.handshake_complete and not self.close_sent and self.initial_response is None:
            drain: Any = {"type": DRAIN}  # not one of ASGI's own messages
            self.queue.put_nowait(drain)
            return
        super().shutdown()


def guarded_protocol(limits: ServerSettings) -> type[GuardedHttpToolsProtocol]:
    """The protocol class uvicorn builds per connection, bound to these limits."""
    return type("HeadendHttpProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})


def uvicorn_options(limits: ServerSettings) -> dict[str, Any]:
    """What ``uvicorn.run`` needs besides the app, host and port."""
    return {
        "http": guarded_protocol(limits),
        "timeout_keep_alive": limits.idle_timeout,
        "ws": DrainingWebSocketProtocol,
        "ws_max_size": limits.max_body_bytes,  # a response.create frame: a request's body
        "ws_per_message_deflate": True,  # Codex CLI offers it
        "h11_max_incomplete_event_size": limits.max_header_bytes,
    }
