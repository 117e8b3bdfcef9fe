"""The error body each surface's clients expect, chosen by path (OpenAI's everywhere else)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.types import Send

from headend.errors import APIError

Envelope = Callable[[APIError], dict[str, Any]]

ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    409: "invalid_request_error",
    413: "request_too_large",
    431: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def openai_envelope(error: APIError) -> dict[str, Any]:
    return error.envelope()


def anthropic_envelope(error: APIError) -> dict[str, Any]:
    """``{"type": "error", "error": {"type", "message"}}``, as Anthropic's API answers."""
    kind = ANTHROPIC_TYPES.get(error.status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": error.message}}


SHAPES: tuple[tuple[str, Envelope], ...] = (("/v1/messages", anthropic_envelope),)


def envelope_for(path: str) -> Envelope:
    for prefix, envelope in SHAPES:
        if path.startswith(prefix):
            return envelope
    return openai_envelope


async def send_error(send: Send, error: APIError, envelope: Envelope) -> None:
    """The error as a whole JSON response, straight on the ASGI channel (for the places
    that answer before or outside a Starlette response)."""
    body = orjson.dumps(envelope(error))
    extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()]
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
