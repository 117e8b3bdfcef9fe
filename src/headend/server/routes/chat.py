"""``POST /v1/chat/completions``."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from headend.agents.loop import ToolProgress
from headend.runs.events import RunEvent, completion_of
from headend.runs.run import Run
from headend.server.auth import principal_of
from headend.server.cancel import until_disconnected
from headend.server.json_bodies import decode_json, read_body
from headend.server.request_record import request_context
from headend.server.services import services
from headend.server.sse import EventStream
from headend.surfaces.agent_chunks import DONE_FRAME, chunk_frames, error_frames
from headend.types import Json


async def create_chat_completion(request: Request) -> Response:
    found = services(request)
    body = decode_json(await read_body(request, found.settings.server.max_body_bytes))
    return await respond(request, body)


async def respond(request: Request, body: Any) -> Response:
    """A chat completion, or its stream, for an already-parsed body."""
    found = services(request)
    run = await found.runs.start(
        body, request_context(request), request.headers, principal_of(request.scope)
    )
    events = found.runs.events(run)
    if run.stream:
        return EventStream(
            chat_frames(run, events),
            on_error=error_frames,
            keepalive=found.settings.server.keepalive_seconds,
            headers=run.headers,
            on_close=lambda: found.runs.release(run),
        )
    answer = await until_disconnected(request, completion_of(events))
    if run.guard is not None:
        said_too(answer["choices"][0].get("message") or {})
    return Response(orjson.dumps(answer), media_type="application/json", headers=run.headers)


async def chat_frames(run: Run, events: AsyncGenerator[RunEvent, None]) -> AsyncGenerator[bytes]:
    """SSE frames of the run's chunks as they arrive, and of its tools' progress if the
    request asked for it."""
    async for event in events:
        if isinstance(event, ToolProgress):
            if run.progress is not None and run.frames is not None:
                yield run.frames.progress_frame(event)
        elif isinstance(event, list) and event:
            if run.guard is not None:
                for chunk in event:
                    for choice in chunk.get("choices") or ():
                        said_too(choice.get("delta") or {})
            yield chunk_frames(event)
    yield DONE_FRAME


def said_too(message: Json) -> None:
    """A guardrail's refusal in ``content`` too: clients that know ``refusal`` (the
    openai SDK) find it there, and those that show only ``content`` (the llm CLI, Open
    WebUI, LangChain) still show why."""
    if message.get("refusal") and not message.get("content"):
        message["content"] = message["refusal"]
