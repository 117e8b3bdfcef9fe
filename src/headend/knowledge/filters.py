"""OpenAI's attribute filters, evaluated on a vector store file's ``attributes``.

A comparison ``{type: eq|ne|gt|gte|lt|lte|in|nin, key, value}``, or a compound ``{type:
and|or, filters: [...]}`` that nests. A file without the key, or whose value is of another
type than the filter's (a string against a number), matches ``ne`` and ``nin`` and nothing
else. Strings order as strings, numbers as numbers; booleans only compare for (in)equality.
The filter's shape is checked by ``schemas.openai.vector_stores_api`` before it gets here.
"""

from __future__ import annotations

from typing import Any

from headend.types import Json

NEGATIVE = frozenset({"ne", "nin"})


def matches(attributes: Json, filter_: Json | None) -> bool:
    if filter_ is None:
        return True
    kind: str = filter_["type"]
    if kind == "and":
        return all(matches(attributes, f) for f in filter_["filters"])
    if kind == "or":
        return any(matches(attributes, f) for f in filter_["filters"])
    key, value = filter_["key"], filter_["value"]
    if key not in attributes:
        return kind in NEGATIVE
    have = attributes[key]
    if kind in ("in", "nin"):
        found = any(_same(have, v) and have == v for v in value)
        return found if kind == "in" else not found
    if not _same(have, value):
        return kind == "ne"
    if kind == "eq":
        return bool(have == value)
    if kind == "ne":
        return bool(have != value)
    if isinstance(have, bool):
        return False
    return _ordered(kind, have, value)


def _same(a: Any, b: Any) -> bool:
    """Whether two attribute values are of one kind: string, number or boolean."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return True
    return isinstance(a, str) and isinstance(b, str)


def _ordered(kind: str, have: Any, value: Any) -> bool:
    if kind == "gt":
        return bool(have > value)
    if kind == "gte":
        return bool(have >= value)
    if kind == "lt":
        return bool(have < value)
    return bool(have <= value)
