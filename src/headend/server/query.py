"""Query parameters read strictly: a value that is not what the parameter takes is a 400
naming it, never a 500 or a silent default."""

from __future__ import annotations

from starlette.requests import Request

from headend.errors import InvalidRequest

FLAGS = {"true": True, "1": True, "false": False, "0": False}


def query_whole(request: Request, name: str, low: int, high: int) -> int | None:
    """A whole number from ``low`` to ``high``, or None when the parameter is absent."""
    value = request.query_params.get(name)
    if value is None:
        return None
    number = value[1:] if value.startswith("-") else value
    if not number.isdigit() or not low <= int(value) <= high:
        raise InvalidRequest(
            f"'{name}' must be a whole number, {low} to {high}.", param=name, code="invalid_value"
        )
    return int(value)


def query_choice(request: Request, name: str, choices: tuple[str, ...]) -> str | None:
    """One of ``choices``, or None when the parameter is absent."""
    value = request.query_params.get(name)
    if value is not None and value not in choices:
        raise InvalidRequest(
            f"'{name}' must be one of {', '.join(choices)}.", param=name, code="invalid_value"
        )
    return value


def query_flag(request: Request, name: str) -> bool:
    """``true`` or ``false`` (``1`` or ``0``); absent is false."""
    value = request.query_params.get(name)
    if value is None:
        return False
    if value.lower() not in FLAGS:
        raise InvalidRequest(f"'{name}' must be true or false.", param=name, code="invalid_value")
    return FLAGS[value.lower()]
