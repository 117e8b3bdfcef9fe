"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: Anthropic's Messages API."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.requests import Request
from starlette.responses import Response

from headend.errors import APIError
from headend.runs.events import chunk_batches, completion_of
from headend.runs.run import Run
from headend.server.auth import principal_of
from headend.server.cancel import until_disconnected
from headend.server.error_shapes import anthropic_envelope
from headend.server.json_bodies import decode_json, json_response, read_body
from headend.server.request_record import request_context
from headend.server.services import Services, services
from headend.server.sse import EventStream
from headend.surfaces.messages_translate import (
    MessageEvents,
    event_frame,
    refusal_stop_reason,
    to_chat,
    to_message,
)


async def create_message(request: Request) -> Response:
    found = services(request)
    body = to_chat(decode_json(await read_body(request, found.settings.server.max_body_bytes)))
    if body.get("stream") is True:
        body["stream_options"] = {"include_usage": True}
    run = await found.runs.start(
        body, request_context(request), request.headers, principal_of(request.scope)
    )
    if run.stream:
        return EventStream(
            message_frames(found, run, refusal_stop_reason(request.headers.get("anthropic-beta"))),
            on_error=error_frame,
            keepalive=found.settings.server.keepalive_seconds,
            headers=run.headers,
            on_close=lambda: found.runs.release(run),
            envelope=anthropic_envelope,
        )
    answer = await until_disconnected(request, completion_of(found.runs.events(run)))
    stop = refusal_stop_reason(request.headers.get("anthropic-beta"))
    message = to_message(answer, run.client_model, run.sources, stop)
    return json_response(message, headers=run.headers)


async def message_frames(
    found: Services, run: Run, refusal_stop: str = "refusal"
) -> AsyncGenerator[bytes, None]:
    shape = MessageEvents(run.client_model, refusal_stop)
    async for batch in chunk_batches(found.runs.events(run)):
        frames = [event_frame(name, data) for chunk in batch for name, data in shape.feed(chunk)]
        if frames:
            yield b"".join(frames)
    yield b"".join(event_frame(name, data) for name, data in shape.finish(run.sources))


def error_frame(error: APIError) -> bytes:
    return event_frame("error", anthropic_envelope(error))


async def count_tokens(request: Request) -> Response:
    found = services(request)
    raw = decode_json(await read_body(request, found.settings.server.max_body_bytes))
    body = to_chat(raw, counting=True)
    tokens = await found.runs.count_tokens(
        body, request_context(request), principal_of(request.scope)
    )
    return json_response({"input_tokens": tokens})
