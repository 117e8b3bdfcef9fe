"""Request bodies in, JSON out: size limits, JSON parsing and schema errors as 4xx."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from headend.errors import InvalidRequest, PayloadTooLarge

M = TypeVar("M", bound=BaseModel)

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


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "dict", "list", "none"})


def _is_union_tag(part: str) -> bool:
    """pydantic puts the tried member of a union in ``loc`` (``str``, ``list[ContentPart]``)."""
    return part in _TYPE_TAGS or "[" in part or part[:1].isupper()


def param_of(loc: tuple[int | str, ...]) -> str:
    """``("messages", 0, "role")`` → ``messages[0].role``, the way OpenAI names params."""
    out = ""
    for part in loc:
        if isinstance(part, str) and _is_union_tag(part):
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def validate(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = param_of(tuple(first["loc"]))
        if first["type"] == "missing":
            raise InvalidRequest(
                f"Missing required parameter: '{param}'.",
                param=param,
                code="missing_required_parameter",
            ) from None
        raise InvalidRequest(
            f"Invalid value for '{param}': {first['msg']}.", param=param, code="invalid_value"
        ) from None


async def parse_request(request: Request, model: type[M], max_bytes: int) -> M:
    return validate(model, decode_json(await read_body(request, max_bytes)))


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
