"""``POST /v1/embeddings``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from headend.server.auth import principal_of
from headend.server.cancel import until_disconnected
from headend.server.json_bodies import decode_json, json_response, read_body
from headend.server.request_record import request_context
from headend.server.services import services


async def create_embeddings(request: Request) -> Response:
    found = services(request)
    body = decode_json(await read_body(request, found.settings.server.max_body_bytes))
    answer, headers = await until_disconnected(
        request,
        found.embeddings.create(body, request_context(request), principal_of(request.scope)),
    )
    return json_response(answer, headers=headers)
