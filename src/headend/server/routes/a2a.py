"""A2A (Agent2Agent): every agent a key may call, as an A2A agent.

- ``GET /a2a``: the key's agents' cards; ``GET /a2a/{agent}/.well-known/agent-card.json``:
  one card, pointing at ``POST /a2a/{agent}``, the agent's JSON-RPC endpoint.
- A task is a background response of the agent (so it outlives the request, is taken up
  by another instance after a crash, fires the webhooks, and is read and cancelled as any
  background response); its ``contextId`` is the agent's session: a message naming one goes
  on with that conversation.
- ``SendMessage`` / ``message/send`` waits for the task to end (unless the client asked not
  to) and answers the task; ``SendStreamingMessage`` / ``message/stream`` answers in SSE:
  the task, ``working``, the answer as artifact chunks as the model writes it, the end
  state; ``GetTask`` / ``tasks/get`` and ``CancelTask`` / ``tasks/cancel`` as named.
- The key is the bearer (checked by the auth middleware: 401 before any JSON-RPC); its
  allowlist, limits and budget hold. Errors are JSON-RPC errors: A2A's -32001 (no such
  task) and -32002 (the task has ended), -32602 for bad params, -32000 for a refusal by
  the key's limits or budget, with headend's status and code in ``data``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from headend.access.principal import Principal
from headend.agents.registry import Agent
from headend.errors import APIError, InvalidRequest, ModelNotFound, NotFound
from headend.server.auth import principal_of
from headend.server.json_bodies import decode_json, json_response, read_body
from headend.server.request_record import request_context
from headend.server.services import Services, services
from headend.server.sse import EventStream
from headend.surfaces.a2a_shapes import (
    STATES,
    V03,
    V1,
    Dialect,
    TaskShapes,
    agent_card,
)
from headend.surfaces.fields import content_text
from headend.surfaces.responses_translate import ResponseEvents, checked
from headend.types import Json

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
TASK_NOT_FOUND, TASK_NOT_CANCELABLE, REFUSED = -32001, -32002, -32000
FINISHED = frozenset({"completed", "incomplete", "failed", "cancelled"})
ENDINGS = frozenset(
    {"response.completed", "response.failed", "response.incomplete", "response.cancelled"}
)
CARD_PATH = "/.well-known/agent-card.json"


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Json | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data

    def shape(self) -> Json:
        error: Json = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def rpc_error_of(error: APIError) -> RpcError:
    """A refusal of headend's, as a JSON-RPC error its client can act on."""
    data = {"status": error.status, "type": error.type, "code": error.code}
    if error.status in (400, 404):  # a bad field, or a context that is not the key's
        return RpcError(INVALID_PARAMS, error.message, data)
    return RpcError(REFUSED, error.message, data)


@dataclass(slots=True)
class Call:
    """One JSON-RPC call to one agent."""

    request: Request
    found: Services
    principal: Principal
    agent: Agent
    dialect: Dialect
    id: Any
    params: Json

    def answer(self, result: Json) -> Response:
        return json_response({"jsonrpc": "2.0", "id": self.id, "result": result})

    def frame(self, result: Json) -> bytes:
        body = {"jsonrpc": "2.0", "id": self.id, "result": result}
        return b"data: " + orjson.dumps(body) + b"\n\n"


def agent_of(request: Request) -> tuple[Services, Principal, Agent]:
    """The agent the path names, if the key may call it (else 404, as for an unknown one)."""
    found, principal = services(request), principal_of(request.scope)
    name = request.path_params["agent"]
    agent = found.agents.get(name)
    if agent is None or not principal.may_use(agent.id):
        raise ModelNotFound(name)
    return found, principal, agent


def card_of(request: Request, agent: Agent) -> Json:
    url = str(request.base_url).rstrip("/") + f"/a2a/{agent.id}"
    return agent_card(agent.id, agent.spec.description, agent.version, url)


async def agent_card_route(request: Request) -> Response:
    _, _, agent = agent_of(request)
    return json_response(card_of(request, agent))


async def list_agent_cards(request: Request) -> Response:
    found, principal = services(request), principal_of(request.scope)
    cards = [card_of(request, a) for a in found.agents if principal.may_use(a.id)]
    return json_response({"object": "list", "data": cards})


async def agent_rpc(request: Request) -> Response:
    found, principal, agent = agent_of(request)
    raw = await read_body(request, found.settings.server.max_body_bytes)
    call_id: Any = None
    try:
        try:
            message = decode_json(raw)
        except InvalidRequest as error:  # not JSON, or nested past the limit
            raise RpcError(PARSE_ERROR, error.message) from None
        if not isinstance(message, dict):
            raise RpcError(INVALID_REQUEST, "A JSON-RPC request is a JSON object.")
        call_id = message.get("id")
        method, params = message.get("method"), message.get("params", {})
        if message.get("jsonrpc") != "2.0" or not isinstance(method, str):
            raise RpcError(INVALID_REQUEST, "Send a JSON-RPC 2.0 request with a 'method'.")
        if not isinstance(call_id, str | int) or isinstance(call_id, bool):
            raise RpcError(INVALID_REQUEST, "The request's 'id' must be a string or a number.")
        if not isinstance(params, dict):
            raise RpcError(INVALID_PARAMS, "'params' must be an object.")
        entry = METHODS.get(method)
        if entry is None:
            raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method}")
        dialect, handler = entry
        return await handler(Call(request, found, principal, agent, dialect, call_id, params))
    except RpcError as error:
        return json_response({"jsonrpc": "2.0", "id": call_id, "error": error.shape()})
    except APIError as error:
        refused = rpc_error_of(error)
        return json_response({"jsonrpc": "2.0", "id": call_id, "error": refused.shape()})


def _text_of(call: Call) -> tuple[str, str | None]:
    message = call.params.get("message")
    if not isinstance(message, dict):
        raise RpcError(INVALID_PARAMS, "'params.message' must be a message object.")
    text = content_text(message.get("parts"))
    if not text.strip():
        raise RpcError(INVALID_PARAMS, "The message needs a text part: headend's agents take text.")
    context = message.get("contextId")
    if context is not None and not isinstance(context, str):
        raise RpcError(INVALID_PARAMS, "'contextId' must be a string.")
    return text, context or None


async def _start(call: Call, text: str, context: str | None) -> Json:
    """The task's background response, accepted (queued)."""
    found = call.found
    body = checked({"model": call.agent.id, "input": text, "background": True, "store": True})
    started = await found.response_runs.start(
        body, request_context(call.request), {}, call.principal, session_id=context
    )
    events = ResponseEvents(started.shape)
    return await found.background.accept(
        started.run, events, started.items, started.owner, started.resume()
    )


def _waits(call: Call) -> bool:
    configuration = call.params.get("configuration") or {}
    if not isinstance(configuration, dict):
        raise RpcError(INVALID_PARAMS, "'configuration' must be an object.")
    if call.dialect.v1:
        return configuration.get("returnImmediately") is not True
    return configuration.get("blocking") is not False


async def send_message(call: Call) -> Response:
    text, context = _text_of(call)
    queued = await _start(call, text, context)
    owner = call.principal.owner
    if _waits(call):
        async for batch in await call.found.background.follow(queued["id"], owner, -1):
            if batch[-1]["type"] in ENDINGS:
                break
    record = await call.found.responses.get(queued["id"], owner)
    task = TaskShapes(call.dialect, record.body).task([text])
    return call.answer(call.dialect.result("task", task))


async def stream_message(call: Call) -> Response:
    text, context = _text_of(call)
    queued = await _start(call, text, context)
    batches = await call.found.background.follow(queued["id"], call.principal.owner, -1)
    return EventStream(
        _task_frames(call, queued, text, batches),
        on_error=lambda error: (
            b"data: "
            + orjson.dumps({"jsonrpc": "2.0", "id": call.id, "error": rpc_error_of(error).shape()})
            + b"\n\n"
        ),
        keepalive=call.found.settings.server.keepalive_seconds,
    )


async def _task_frames(
    call: Call, queued: Json, text: str, batches: AsyncGenerator[list[Json], None]
) -> AsyncGenerator[bytes, None]:
    """The task, then its progress: ``working``, the answer in chunks, the end state (the
    events of a background response that a client follows, in A2A's words)."""
    shapes = TaskShapes(call.dialect, queued)
    yield call.frame(call.dialect.result("task", shapes.task([text])))
    wrote = False
    async for batch in batches:
        for event in batch:
            kind = event["type"]
            if kind == "response.in_progress":
                yield call.frame(shapes.status_update("working", final=False))
            elif kind == "response.output_text.delta" and event.get("delta"):
                yield call.frame(shapes.artifact_update(event["delta"], append=wrote, last=False))
                wrote = True
            elif kind in ENDINGS:
                ended = TaskShapes(call.dialect, event["response"])
                yield call.frame(ended.status_update(ended.state(), final=True))
                return


async def get_task(call: Call) -> Response:
    task_id, history = _task_params(call)
    record = await _task_record(call, task_id)
    asked = [content_text(item.get("content")) for item in record.input_items]
    task = TaskShapes(call.dialect, record.body).task([a for a in asked if a], history)
    return call.answer(task)


async def cancel_task(call: Call) -> Response:
    task_id, _ = _task_params(call)
    record = await _task_record(call, task_id)
    if record.body.get("status") in FINISHED:
        state = STATES[record.body["status"]]
        raise RpcError(TASK_NOT_CANCELABLE, f"Task {task_id} has ended ({state}).")
    body = await call.found.background.cancel(task_id, call.principal.owner)
    return call.answer(TaskShapes(call.dialect, body).task([]))


def _task_params(call: Call) -> tuple[str, int | None]:
    task_id, history = call.params.get("id"), call.params.get("historyLength")
    if not isinstance(task_id, str) or not task_id:
        raise RpcError(INVALID_PARAMS, "'id' must be a task id.")
    if history is not None and (not isinstance(history, int) or history < 0):
        raise RpcError(INVALID_PARAMS, "'historyLength' must be a whole number.")
    return task_id, history


async def _task_record(call: Call, task_id: str) -> Any:
    """The key's task of this agent (another key's, or another agent's, is not found)."""
    try:
        record = await call.found.responses.get(task_id, call.principal.owner)
    except NotFound:
        raise RpcError(TASK_NOT_FOUND, f"Task not found: {task_id}") from None
    if record.body.get("model") != call.agent.id:
        raise RpcError(TASK_NOT_FOUND, f"Task not found: {task_id}")
    return record


Handler = Callable[[Call], Awaitable[Response]]
METHODS: dict[str, tuple[Dialect, Handler]] = {
    "SendMessage": (V1, send_message),
    "SendStreamingMessage": (V1, stream_message),
    "GetTask": (V1, get_task),
    "CancelTask": (V1, cancel_task),
    "message/send": (V03, send_message),
    "message/stream": (V03, stream_message),
    "tasks/get": (V03, get_task),
    "tasks/cancel": (V03, cancel_task),
}
