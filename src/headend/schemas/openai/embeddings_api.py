"""``POST /v1/embeddings`` shapes: the request as OpenAI defines it, and the answer.

Fields beyond OpenAI's are kept (``extra="allow"``): an OpenAI-compatible upstream may
take its own (``input_type``, ``truncate``); the embedded model ignores them.
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Sequence
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator
from pydantic_core import PydanticCustomError

from headend.types import Json

MAX_INPUTS = 2048

EncodingFormat = Literal["float", "base64"]


class EmbeddingRequest(BaseModel):
    # strict: the body goes upstream as sent, so "8" or 8.0 for an integer must not pass
    model_config = ConfigDict(extra="allow", strict=True)

    model: StrictStr = Field(min_length=1)
    input: str | list[str] | list[list[int]] | list[int]
    encoding_format: EncodingFormat = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _one_of_the_shapes(cls, value: Any) -> Any:
        problem = input_problem(value)
        if problem is not None:
            raise PydanticCustomError("input", problem)
        return value

    def inputs(self) -> list[str | list[int]]:
        """Every input as a list: strings, or token arrays."""
        given = self.input
        if isinstance(given, str):
            return [given]
        if isinstance(given[0], int):
            return [given]  # one token array
        return cast(list[str | list[int]], given)


SHAPES = (
    "expected a non-empty string, an array of 1 to 2048 non-empty strings, an array of "
    "token ids, or an array of 1 to 2048 non-empty arrays of token ids"
)


def _tokens(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(type(token) is int and token >= 0 for token in value)
    )


def input_problem(value: Any) -> str | None:
    """What is wrong with an embeddings ``input``, or None when it has one of its shapes."""
    if isinstance(value, str):
        return None if value else "an empty string cannot be embedded"
    if not isinstance(value, list) or not value or len(value) > MAX_INPUTS:
        return SHAPES
    if _tokens(value):
        return None
    first = value[0]
    for index, item in enumerate(value):
        if isinstance(first, str) and not (isinstance(item, str) and item):
            return f"{SHAPES}; item {index} is not a non-empty string"
        if not isinstance(first, str) and not _tokens(item):
            return f"{SHAPES}; item {index} is not a non-empty array of token ids"
    return None


def encode_vector(vector: Sequence[float], encoding: EncodingFormat) -> list[float] | str:
    """A vector as OpenAI sends it: floats, or base64 of little-endian float32s."""
    if encoding == "float":
        return list(vector)
    packed = array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def embedding_list(
    vectors: Sequence[Sequence[float]], model: str, prompt_tokens: int, encoding: EncodingFormat
) -> Json:
    """The ``list`` of ``embedding`` objects a request answers with."""
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": encode_vector(vector, encoding)}
            for index, vector in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
