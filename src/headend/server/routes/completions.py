"""``POST /v1/completions``: the legacy Completions API, one chat run per prompt, in turn."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from headend.runs.events import chunk_batches, completion_of
from headend.runs.run import Run
from headend.server.auth import principal_of
from headend.server.cancel import until_disconnected
from headend.server.json_bodies import decode_json, json_response, read_body
from headend.server.request_record import request_context
from headend.server.services import services
from headend.server.sse import EventStream
from headend.surfaces.agent_chunks import DONE_FRAME, chunk_frames, error_frames
from headend.surfaces.completions_translate import (
    CompletionChunks,
    choice,
    prompts_of,
    to_chat,
    to_completion,
)


async def create_completion(request: Request) -> Response:
    found = services(request)
    body = decode_json(await read_body(request, found.settings.server.max_body_bytes))
    prompts = prompts_of(body)
    bodies = [to_chat(body, prompt) for prompt in prompts]
    context, principal = request_context(request), principal_of(request.scope)

    async def start(chat: dict[str, Any]) -> Run:
        # Streams always carry usage inside; the client sees it only if it asked.
        if chat.get("stream") is True:
            chat = {**chat, "stream_options": {"include_usage": True}}
        return await found.runs.start(chat, context, request.headers, principal)

    first = await start(bodies[0])  # errors before anything runs are real statuses
    echo = prompts if body.get("echo") is True else None
    if first.stream:
        options = body.get("stream_options")
        shape = CompletionChunks(
            first.client_model,
            isinstance(options, dict) and options.get("include_usage") is True,
            first.session.session_id if first.session is not None else None,
        )
        runs: list[Run] = [first]

        async def frames() -> AsyncGenerator[bytes, None]:
            for index, chat in enumerate(bodies):
                current = first
                if index:
                    current = await start(chat)
                    runs.append(current)
                if echo is not None:
                    yield chunk_frames([shape.chunk([choice(index, echo[index], None)])])
                async for batch in chunk_batches(found.runs.events(current)):
                    out = [c for chunk in batch for c in shape.feed(index, chunk)]
                    if out:
                        yield chunk_frames(out)
            yield chunk_frames(shape.end()) + DONE_FRAME

        async def release() -> None:
            for each in runs:
                await found.runs.release(each)

        return EventStream(
            frames(),
            on_error=error_frames,
            keepalive=found.settings.server.keepalive_seconds,
            headers=first.headers,
            on_close=release,
        )

    async def answers() -> list[dict[str, Any]]:
        out = [await completion_of(found.runs.events(first))]
        for chat in bodies[1:]:
            out.append(await completion_of(found.runs.events(await start(chat))))
        return out

    done = await until_disconnected(request, answers())
    answer = to_completion(done, first.client_model, echo)
    if first.session is not None:  # an agent's conversation, as on chat's answer
        answer["session_id"] = first.session.session_id
    return json_response(answer, headers=first.headers)
