"""Every error leaves the server in its surface's envelope (OpenAI's unless the path says)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from headend.errors import APIError, MethodNotAllowed, NotFound
from headend.server.error_shapes import envelope_for
from headend.server.json_bodies import json_response
from headend.server.request_record import context_of


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    context = context_of(request.scope)
    if context is not None:
        context.error = exc
    body = envelope_for(request.url.path)(exc)
    return json_response(body, status_code=exc.status, headers=exc.headers or None)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: APIError
    if exc.status_code == 405:
        error = MethodNotAllowed(f"Method {request.method} is not allowed on {request.url.path}.")
    else:
        error = NotFound(f"Unknown path: {request.method} {request.url.path}.", code="unknown_url")
    body = envelope_for(request.url.path)(error)
    return json_response(body, status_code=error.status, headers=exc.headers)


# Anything else is a bug: RequestContextMiddleware logs it and answers 500 with the request id.
EXCEPTION_HANDLERS = {APIError: api_error, HTTPException: http_error}
