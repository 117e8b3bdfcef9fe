"""Server-sent events as an ASGI response that waits for its first frame.

Headers go out only when the first frame is in hand (or ``keepalive`` seconds have passed
without one), so an error before the first token is a real HTTP status. After that a
``: keepalive`` comment follows every ``keepalive`` seconds of silence, an error becomes
frames from ``on_error``, and a client disconnect cancels the producer at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from headend.errors import APIError, ClientDisconnected
from headend.server.cancel import while_connected
from headend.server.error_shapes import Envelope, openai_envelope, send_error

log = logging.getLogger(__name__)

KEEPALIVE = b": keepalive\n\n"
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class EventStream(Response):
    """A ``Response`` so that routes may return it; it speaks ASGI itself."""

    def __init__(
        self,
        frames: AsyncGenerator[bytes, None],
        *,
        on_error: Callable[[APIError], bytes],
        keepalive: float = 15.0,
        headers: dict[str, str] | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
        envelope: Envelope = openai_envelope,
    ) -> None:
        self.status_code = 200
        self.frames = frames
        self.on_error = on_error
        self.keepalive = keepalive
        self.raw_headers = SSE_HEADERS + [
            (key.lower().encode("latin-1"), value.encode("latin-1"))
            for key, value in (headers or {}).items()
        ]
        self.on_close = on_close
        self.envelope = envelope
        self._started = False
        self._last_sent = 0.0
        self._keepalive_timer: asyncio.TimerHandle | None = None
        self._keepalive_task: asyncio.Future[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The frames are pumped in the request's own task, which a client leaving cancels;
        # the keepalive is a loop timer that only starts a task when a comment is due.
        loop = asyncio.get_running_loop()
        self._last_sent = loop.time()
        self._keepalive_timer = loop.call_at(self._last_sent + self.keepalive, self._due, send)
        try:
            await while_connected(scope, receive, self._pump(send))
        except ClientDisconnected:
            pass  # nothing left to say
        finally:
            self._keepalive_timer.cancel()
            if self._keepalive_task is not None:
                self._keepalive_task.cancel()
            try:
                await self.frames.aclose()
            finally:
                # Even when the producer never started (the client left at once).
                if self.on_close is not None:
                    await self.on_close()

    def _due(self, send: Send) -> None:
        """The keepalive timer: a comment after ``keepalive`` seconds of silence (one at a
        time: while one is still being sent, the next is looked at a whole interval later)."""
        loop = asyncio.get_running_loop()
        now, due = loop.time(), self._last_sent + self.keepalive
        if now >= due:
            if self._keepalive_task is None:
                self._keepalive_task = asyncio.ensure_future(self._keep_alive(send))
            due = now + self.keepalive
        self._keepalive_timer = loop.call_at(due, self._due, send)

    async def _start(self, send: Send, status: int = 200) -> None:
        self._started = True
        await send({"type": "http.response.start", "status": status, "headers": self.raw_headers})

    async def _send(self, send: Send, chunk: bytes, more: bool = True) -> None:
        self._last_sent = asyncio.get_running_loop().time()
        await send({"type": "http.response.body", "body": chunk, "more_body": more})

    async def _pump(self, send: Send) -> None:
        try:
            async for frame in self.frames:
                if not self._started:
                    await self._start(send)
                await self._send(send, frame)
        except APIError as exc:
            if not self._started:
                await self._error_response(send, exc)
                return
            await self._send(send, self.on_error(exc))
        except Exception:
            if not self._started:
                raise
            log.exception("stream failed after its first frame")
            await self._send(send, self.on_error(APIError("The server had an error.")))
        if not self._started:
            await self._start(send)
        await self._send(send, b"", more=False)

    async def _error_response(self, send: Send, exc: APIError) -> None:
        self._started = True
        await send_error(send, exc, self.envelope)

    async def _keep_alive(self, send: Send) -> None:
        try:
            if not self._started:
                await self._start(send)
            await self._send(send, KEEPALIVE)
        except Exception:  # the connection is failing: the pump finds out on its next frame
            log.debug("a keepalive comment could not be sent", exc_info=True)
        finally:
            self._keepalive_task = None
