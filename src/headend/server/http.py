"""Request bodies in, JSON out: size limits, JSON parsing and schema errors as 4xx."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from headend.errors import InvalidRequest, PayloadTooLarge

INVALID_JSON = (
    "We could not parse the JSON body of your request. The body must be a JSON object "
    "sent with Content-Type: application/json."
)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, refusing anything over ``max_bytes`` before and while reading it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"The request body is larger than the limit of {max_bytes} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(
                f"The request body is larger than the limit of {max_bytes} bytes."
            )
        chunks.append(chunk)
    return b"".join(chunks)


def decode_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest(INVALID_JSON, code="invalid_json") from None


def json_response(
    content: BaseModel | dict[str, Any],
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = (
        content.model_dump_json().encode()
        if isinstance(content, BaseModel)
        else orjson.dumps(content)
    )
    return Response(body, status_code=status_code, headers=headers, media_type="application/json")
