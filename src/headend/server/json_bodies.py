"""Request bodies in, JSON out: size limits, JSON parsing and schema errors as 4xx.

A body may nest at most ``MAX_DEPTH`` levels: deeper JSON is refused before anything runs
(orjson reads 1,024 levels but writes only 254, so a deep body that got through would fail
later, half done).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from headend.errors import ClientDisconnected, InvalidRequest, PayloadTooLarge

INVALID_JSON = (
    "We could not parse the JSON body of your request. The body must be a JSON object "
    "sent with Content-Type: application/json."
)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, refusing anything over ``max_bytes`` before and while reading it.

    Read from ``receive`` directly (Starlette's ``Request.stream`` adds a generator and a
    headers object to every request for nothing the routes use)."""
    too_large = f"The request body is larger than the limit of {max_bytes} bytes."
    for name, value in request.scope["headers"]:
        if name == b"content-length":
            if value.isdigit() and int(value) > max_bytes:
                raise PayloadTooLarge(too_large)
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":  # gone, or cut off by the body deadline
            raise ClientDisconnected("The client closed the connection.")
        body: bytes = message.get("body", b"")
        if body:
            size += len(body)
            if size > max_bytes:
                raise PayloadTooLarge(too_large)
            chunks.append(body)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


MAX_DEPTH = 64


def decode_json(body: bytes) -> Any:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest(INVALID_JSON, code="invalid_json") from None
    # Counting brackets first spares the walk to nearly every request (strings may hold
    # brackets, so a count over the limit only means the walk must look).
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH and isinstance(value, dict | list):
        path = too_deep(value, MAX_DEPTH)
        if path is not None:
            raise InvalidRequest(
                f"The JSON body nests deeper than {MAX_DEPTH} levels at '{_where(path)}'.",
                param=str(path[0]) if path and isinstance(value, dict) else None,
                code="json_too_deep",
            )
    return value


def too_deep(node: dict[str, Any] | list[Any], levels: int) -> tuple[str | int, ...] | None:
    """None when ``node`` nests at most ``levels`` arrays and objects, else the path to the
    first place where it goes deeper."""
    if levels == 0:
        return ()
    items = node.items() if type(node) is dict else enumerate(node)
    for key, child in items:
        kind = type(child)
        if kind is dict or kind is list:
            found = too_deep(child, levels - 1)
            if found is not None:
                return (key, *found)
    return None


def _where(path: tuple[str | int, ...]) -> str:
    shown = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path[:4])
    return shown.lstrip(".") + ("..." if len(path) > 4 else "")


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
