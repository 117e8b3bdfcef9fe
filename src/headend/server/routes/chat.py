"""``POST /v1/chat/completions``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from headend.server.auth import principal_of
from headend.server.cancel import until_disconnected
from headend.server.http import decode_json, read_body
from headend.server.request_record import request_context
from headend.server.services import services
from headend.server.sse import EventStream
from headend.surfaces.agent_chunks import error_frames


async def create_chat_completion(request: Request) -> Response:
    found = services(request)
    body = decode_json(await read_body(request, found.settings.server.max_body_bytes))
    return await respond(request, body)


async def respond(request: Request, body: Any) -> Response:
    """A chat completion, or its stream, for an already-parsed body."""
    found = services(request)
    plan = await found.chat.plan(
        body, request_context(request), request.headers, principal_of(request.scope)
    )
    if plan.stream:
        return EventStream(
            found.chat.stream(plan),
            on_error=error_frames,
            keepalive=found.settings.server.keepalive_seconds,
            headers=plan.headers,
            on_close=lambda: found.chat.release(plan),
        )
    answer = await until_disconnected(request, found.chat.complete(plan))
    return Response(answer, media_type="application/json", headers=plan.headers)
