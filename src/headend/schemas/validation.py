"""Validating wire dicts against schemas, with errors that name the param as OpenAI does."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from headend.errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)

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


def _depth(loc: tuple[int | str, ...]) -> int:
    return sum(1 for part in loc if not (isinstance(part, str) and _is_union_tag(part)))


def json_object(data: Any) -> dict[str, Any]:
    """The request body, which must be a JSON object."""
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
    return data


def validate(model: type[M], data: Any) -> M:
    data = json_object(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # A union reports one error per member: the one that went deepest is the one meant
        # (``input`` as a list whose item 3 is wrong, not ``input`` as a string).
        errors = exc.errors()
        first = max(errors, key=lambda error: _depth(tuple(error["loc"])))
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
