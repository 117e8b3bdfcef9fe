"""The base of every OpenAI- and Anthropic-compatible request shape.

Unknown fields are kept (and logged by whoever reads them), never rejected: clients send
fields newer than this server. Known fields are strictly typed, so a value of the wrong type
is a 400 naming the field before any code trusts it, never a coercion and never a 500.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Discriminator


class RequestShape(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


def kind_of(value: Any, known: dict[str, str], default: str | None = None) -> str | None:
    """The tag of a union member chosen by its ``type`` field: ``known`` maps a type to a tag,
    any other type gets the tag ``"Other"``; a value that is not an object gets none (pydantic
    then says it must be one)."""
    if not isinstance(value, dict):
        return None
    kind = value.get("type", default)
    return known.get(kind, "Other") if isinstance(kind, str) else "Other"


def by_type(known: dict[str, str], default: str | None = None) -> Discriminator:
    """A discriminator choosing a union member by ``type`` (see ``kind_of``)."""

    def tag(value: Any) -> str | None:
        return kind_of(value, known, default)

    return Discriminator(
        tag,
        custom_error_type="invalid_type",
        custom_error_message="Expected an object with a 'type'",
    )
