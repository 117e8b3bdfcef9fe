"""``/v1/responses`` over WebSocket: OpenAI's WebSocket mode, Codex CLI's first choice.

The upgrade is authenticated as any request is (``AuthMiddleware``: a key, its scopes; a
refusal is the HTTP status and envelope). Then each text frame ``{"type":
"response.create", …}`` carries a Responses request body (``stream`` and
``stream_options`` are implied and ignored, ``background`` refused) and is answered with
the events of the HTTP stream, one per text frame: one response at a time per socket, in
the order asked (later frames wait their turn). Every response checks the key again, and
passes its limits and budget, as an HTTP request would.

- ``previous_response_id`` naming the socket's latest response goes on from what the
  socket holds (``runs.socket_chain``), without reading the store, so a chain of responses
  not stored continues too; any other goes the way it does over HTTP.
- ``generate: false`` warms up: the request is checked, nothing runs, and the response it
  makes (no output) may be gone on from.
- An error is an ``error`` event with its HTTP ``status`` and the error object (OpenAI's
  shape, which Codex reads); the socket stays open. A key revoked or expired while the
  socket is open closes it (1008) after the error; a socket past ``websocket_seconds`` is told
  ``websocket_connection_limit_reached`` and closed (1000), so the client reconnects.
- A ``stream_id`` in ``response.create`` comes back on every event of its response, and
  each stream keeps its own latest response (its responses still run one at a time).
- When the server drains, the requests a socket had sent are answered, then it is closed
  (1012): the client connects again, to an instance that serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import orjson
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from headend.access.principal import Principal
from headend.errors import APIError, InsufficientScope, InvalidKey, InvalidRequest
from headend.runs.socket_chain import Link, SocketChain
from headend.server.auth import CREDENTIAL, POLICY_VIOLATION, principal_of
from headend.server.context import SOCKET_RECORDS, SocketRecords
from headend.server.ingress import DRAIN
from headend.server.json_bodies import decode_json
from headend.server.request_record import RequestContext
from headend.server.routes.responses import response_events
from headend.server.services import Services
from headend.surfaces.responses_tools import request_tools
from headend.surfaces.responses_translate import (
    ResponseEvents,
    ResponseShape,
    checked,
    items_of,
)
from headend.types import Json

log = logging.getLogger(__name__)

MOST_WAITING = 16  # frames read ahead of the response running
TRANSPORT_FIELDS = ("type", "stream", "stream_options", "generate", "stream_id")
QUIET = frozenset({"response.processed"})  # Codex's acknowledgement: nothing to answer
NORMAL_CLOSURE = 1000
INTERNAL_ERROR = 1011
SERVICE_RESTART = 1012  # the server is stopping: connect again (to another instance)


class GoingAway:
    """In the waiting frames: close the socket once those before it are answered."""


GOING_AWAY = GoingAway()


class ConnectionLimitReached(InvalidRequest):
    default_code = "websocket_connection_limit_reached"


class SocketClosed(Exception):
    """The socket is to be closed with this code once the error has been told."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def error_event(error: APIError, stream_id: str | None = None) -> Json:
    """An ``error`` event as OpenAI's WebSocket mode sends it: the HTTP status, and the error
    object (with the headers a client would have read, such as ``retry-after``)."""
    detail: Json = {
        "type": error.type,
        "code": error.code,
        "message": error.message,
        "param": error.param,
    }
    if error.headers:
        detail["headers"] = error.headers
    event: Json = {"type": "error", "status": error.status, "error": detail}
    if stream_id is not None:
        event["stream_id"] = stream_id
    return event


def create_event(frame: str | bytes | None) -> Json:
    """A client frame as its event: a JSON object with a ``type`` (a 400 otherwise)."""
    if frame is None:
        raise InvalidRequest("Send events as text frames of JSON.", code="invalid_frame")
    event = decode_json(frame.encode() if isinstance(frame, str) else frame)
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise InvalidRequest(
            "Each frame must be a JSON object with a 'type'.", param="type", code="invalid_type"
        )
    return event


class ResponseSocket:
    """One WebSocket on ``/v1/responses``: frames in, responses out, in turn."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.receive, self.send = receive, send
        self.found: Services = scope["app"].state.services
        state = scope["state"]
        self.records: SocketRecords = state[SOCKET_RECORDS]
        self.credential: str | None = state.get(CREDENTIAL)
        self.principal = principal_of(scope)
        self.headers = {k: v for k, v in Headers(scope=scope).items() if k != "authorization"}
        self.chains: dict[str | None, SocketChain] = {}  # by stream_id (None: the socket's own)
        self.opened = time.monotonic()
        self.waiting: asyncio.Queue[str | bytes | GoingAway | None] = asyncio.Queue()

    async def serve(self) -> None:
        if (await self.receive())["type"] != "websocket.connect":
            return
        await self.send({"type": "websocket.accept"})
        answering = asyncio.create_task(self._answer_in_turn())
        draining = False
        try:
            while True:
                message = await self.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message["type"] == DRAIN:  # the server is stopping: end what was asked
                    draining = True
                    self.waiting.put_nowait(GOING_AWAY)
                    continue
                if draining:
                    continue  # asked after the drain began: the client asks again elsewhere
                frame = message.get("text")
                if self.waiting.qsize() >= MOST_WAITING:
                    await self._send(
                        error_event(
                            InvalidRequest(
                                f"More than {MOST_WAITING} requests are waiting on this socket.",
                                code="too_many_waiting",
                            )
                        )
                    )
                    continue
                self.waiting.put_nowait(frame if frame is not None else message.get("bytes"))
        finally:
            answering.cancel()  # a response under way stops with its client
            with contextlib.suppress(asyncio.CancelledError):
                await answering

    async def _answer_in_turn(self) -> None:
        try:
            while True:
                frame = await self.waiting.get()
                if isinstance(frame, GoingAway):
                    raise SocketClosed(SERVICE_RESTART)
                await self._answer(frame)
        except SocketClosed as closing:
            await self.close(closing.code)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("a Responses WebSocket failed")
            with contextlib.suppress(Exception):
                await self.close(INTERNAL_ERROR)

    async def _answer(self, frame: str | bytes | None) -> None:
        stream_id = None
        try:
            event = create_event(frame)
            if not isinstance(event.get("stream_id"), str | None):
                raise InvalidRequest("'stream_id' must be a string.", param="stream_id")
            stream_id = event.get("stream_id")
            kind = event["type"]
            if kind in QUIET:
                return
            if kind != "response.create":
                raise InvalidRequest(
                    f"Unknown event type '{kind}': send 'response.create'.",
                    param="type",
                    code="unknown_event",
                )
        except APIError as error:
            await self._send(error_event(error, stream_id))
            return
        context = self.records.open(self.principal.key_id)
        status, closing = 200, None
        try:
            status = await self._create(event, context, stream_id)
        except APIError as error:
            context.error, status = error, error.status
            await self._send(error_event(error, stream_id))
            if isinstance(error, ConnectionLimitReached):
                closing = NORMAL_CLOSURE
            elif isinstance(error, InvalidKey | InsufficientScope):
                closing = POLICY_VIOLATION  # the key was revoked, expired or changed
        finally:
            self.records.close(context, status)
        if closing is not None:
            raise SocketClosed(closing)

    async def _create(self, event: Json, context: RequestContext, stream_id: str | None) -> int:
        most = self.found.settings.server.websocket_seconds
        if time.monotonic() - self.opened > most:
            raise ConnectionLimitReached(f"This socket is over {most:g} s old: open another.")
        principal = await self._caller()
        body = {k: v for k, v in event.items() if k not in TRANSPORT_FIELDS}
        if body.get("background") is True:
            raise InvalidRequest(
                "Background responses are not made over a WebSocket: POST /v1/responses.",
                param="background",
            )
        chain = self.chains.setdefault(stream_id, SocketChain())
        if event.get("generate") is False:
            await self._warm_up(body, principal, chain, stream_id)
            return 200
        body = checked({**body, "stream": True})  # a socket's responses are streamed
        after = chain.after(body)
        found = self.found
        started = await found.response_runs.start(body, context, self.headers, principal, after)
        run, shape = started.run, started.shape
        events = ResponseEvents(shape)
        items = started.items if started.keep else None
        try:
            async for batch in response_events(found, run, events, items, started.owner):
                for out in batch:
                    await self._send(out, stream_id)
        except APIError as error:  # after the response began: it failed, the socket goes on
            context.error = error
            await self._send(events.failed(error), stream_id)
            return error.status
        finally:
            await found.runs.release(run)
        chain.latest = Link(shape.id, body["model"], started.items, events.output, shape.session_id)
        return 200

    async def _warm_up(
        self, body: Json, principal: Principal, chain: SocketChain, stream_id: str | None
    ) -> None:
        """``generate: false``: the request checked and remembered, nothing run; its
        response (completed, no output) is one the next may go on from."""
        said = body.get("input")
        body = checked({**body, "input": said if said else ""})
        await self.found.runs.check_model(body, principal)
        after = chain.after(body)
        items = await self.found.responses.resolve(items_of(body), principal.owner) if said else []
        if after is not None and after.session_id is None:
            items = [*after.items, *after.output, *items]
        shape = ResponseShape(body, body["model"], request_tools(body))
        events = ResponseEvents(shape)
        for out in [*events.start(), *events.finish_events()[0]]:
            await self._send(out, stream_id)
        session_id = after.session_id if after is not None else None
        chain.latest = Link(shape.id, body["model"], items, [], session_id)

    async def _caller(self) -> Principal:
        """The key as it stands now (a socket may outlive its key's revocation)."""
        if self.principal.key_id is None or self.credential is None:
            return self.principal  # headend with no keys (loopback only)
        principal = await self.found.auth.principal(self.credential)
        if not principal.has("chat"):
            raise InsufficientScope("This key lacks the 'chat' scope.")
        return principal

    async def _send(self, event: Json, stream_id: str | None = None) -> None:
        if stream_id is not None:
            event = {**event, "stream_id": stream_id}
        await self.send({"type": "websocket.send", "text": orjson.dumps(event).decode()})

    async def close(self, code: int) -> None:
        await self.send({"type": "websocket.close", "code": code})


class ResponsesSocketEndpoint:
    """The route's ASGI app (an instance, so the router hands it the socket as ASGI has it:
    ``DRAIN`` is a message of headend's that Starlette's ``WebSocket`` would refuse)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await ResponseSocket(scope, receive, send).serve()
