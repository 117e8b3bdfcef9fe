"""Grammars that constrain what the embedded model may write: JSON that fits a schema, tool
calls in the model's own format, or a choice between the two.

A grammar is GBNF text for llama.cpp's grammar sampler, built with llama-cpp-python's JSON
schema converter. ``Grammar.triggers`` makes it lazy: the model writes freely until its
output matches one of those patterns (a tool call beginning), and is held to the grammar
from the pattern's first group on.
"""

from __future__ import annotations

import importlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from headend.errors import InvalidRequest

# JSON strings hold no raw control characters (the converter's own rule lets them through,
# and then the text does not parse).
STRICT_CHAR = (
    r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] '
    r"[0-9a-fA-F] [0-9a-fA-F])"
)


# Integer ranges up to this many values are held to their bounds (as an enum: the converter
# has no rule for minimum/maximum); wider ones only to being integers.
INTEGER_RANGE_LIMIT = 2048


def bounded_integers(schema: Any) -> Any:
    """The schema with every small bounded integer range spelled out as an enum."""
    if isinstance(schema, list):
        return [bounded_integers(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: bounded_integers(value) for key, value in schema.items()}
    if out.get("type") == "integer" and "enum" not in out:
        low, high = (
            _bound(out, "minimum", "exclusiveMinimum", 1),
            _bound(out, "maximum", "exclusiveMaximum", -1),
        )
        if low is not None and high is not None and 0 <= high - low < INTEGER_RANGE_LIMIT:
            out["enum"] = list(range(low, high + 1))
    return out


def _bound(schema: dict[str, Any], inclusive: str, exclusive: str, step: int) -> int | None:
    value, strict = schema.get(inclusive), schema.get(exclusive)
    if isinstance(strict, int | float) and not isinstance(strict, bool):
        return math.floor(strict) + 1 if step > 0 else math.ceil(strict) - 1
    if isinstance(value, int | float) and not isinstance(value, bool):
        return math.ceil(value) if step > 0 else math.floor(value)
    return None


@dataclass(frozen=True, slots=True)
class Grammar:
    text: str
    triggers: tuple[str, ...] = ()  # regexes over the whole output; empty: always on
    param: str = ""  # the request field it comes from, for errors


@dataclass(slots=True)
class GrammarBuilder:
    """Rules from JSON schemas, named apart so that several fit in one grammar."""

    param: str
    _converter: Any = field(init=False)

    def __post_init__(self) -> None:
        module: Any = importlib.import_module("llama_cpp.llama_grammar")  # untyped
        self._converter = module.SchemaConverter(
            prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False
        )

    def schema(self, schema: Any, name: str, param: str | None = None) -> str:
        """A rule for JSON values valid against ``schema``; returns the rule's name."""
        where = param or self.param
        if not isinstance(schema, dict):
            raise InvalidRequest("A JSON schema must be an object.", param=where)
        try:
            copied = bounded_integers(json.loads(json.dumps(schema)))
            resolved = self._converter.resolve_refs(copied, name)
            rule: str = self._converter.visit(resolved, name)
        except (ValueError, KeyError, TypeError, AssertionError, RecursionError) as exc:
            raise InvalidRequest(
                f"This JSON schema cannot be used to constrain the model: {exc}", param=where
            ) from exc
        return rule

    def literal(self, text: str) -> str:
        formatted: str = self._converter._format_literal(text)
        return formatted

    def rule(self, name: str, body: str) -> str:
        added: str = self._converter._add_rule(name, body)
        return added

    def build(self, root: str, triggers: tuple[str, ...] = ()) -> Grammar:
        rules = self._converter._rules
        rules["root"] = root
        if "char" in rules:
            rules["char"] = STRICT_CHAR
        text: str = self._converter.format_grammar()
        return Grammar(text, triggers, self.param)


def json_grammar(schema: Any, param: str) -> Grammar:
    """Only a JSON value valid against ``schema``."""
    builder = GrammarBuilder(param)
    return builder.build(builder.schema(schema, "answer"))
