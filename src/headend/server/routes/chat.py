"""``POST /v1/chat/completions``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from headend.schemas.openai.chat import ChatCompletionRequest
from headend.server.cancel import until_disconnected
from headend.server.chat import error_frames
from headend.server.http import json_response, parse_request
from headend.server.services import services
from headend.server.sse import EventStream


async def create_chat_completion(request: Request) -> Response:
    found = services(request)
    body = await parse_request(request, ChatCompletionRequest, found.settings.server.max_body_bytes)
    turn = found.chat.prepare(body)
    if body.stream:
        return EventStream(
            found.chat.stream(turn),
            on_error=error_frames,
            keepalive=found.settings.server.keepalive_seconds,
        )
    completion = await until_disconnected(request, found.chat.complete(turn))
    return json_response(completion)
