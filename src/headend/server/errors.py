"""Every error leaves the server in the OpenAI envelope."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from headend.errors import APIError, MethodNotAllowed, NotFound
from headend.server.error_shapes import envelope_for
from headend.server.http import json_response

log = logging.getLogger(__name__)


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
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


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error", exc_info=exc)
    error = APIError("The server had an error while processing your request.")
    return json_response(envelope_for(request.url.path)(error), 500)


EXCEPTION_HANDLERS = {APIError: api_error, HTTPException: http_error, Exception: unexpected_error}
