"""Every object headend returns, checked against the wire shapes its clients were built for:
OpenAI's published schemas (cut from its OpenAPI spec by ``extract.py``) and Anthropic's
documented Messages shapes (written out in ``anthropic.py``)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.spec.anthropic import SCHEMAS as ANTHROPIC

HERE = Path(__file__).parent
PREFIX = "#/components/schemas/"


@cache
def _openai() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((HERE / "openai-schemas.json").read_text())
    schemas: dict[str, Any] = loaded["schemas"]
    return schemas


def openai_components() -> dict[str, Any]:
    """OpenAI's component schemas, as ``extract.py`` cut them (requests included)."""
    return _openai()


@cache
def _validator(family: str, name: str) -> Draft202012Validator:
    schemas = _openai() if family == "openai" else ANTHROPIC
    document = {"components": {"schemas": schemas}}
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:spec", resource)
    return Draft202012Validator({"$ref": f"urn:spec{PREFIX}{name}"}, registry=registry)


@cache
def _event_schemas() -> dict[str, str]:
    """Responses stream event type -> its own schema (for errors that say what is wrong)."""
    schemas = _openai()
    by_type = {}
    for option in schemas["ResponseStreamEvent"]["anyOf"]:
        name = option["$ref"].rsplit("/", 1)[-1]
        kind = schemas[name].get("properties", {}).get("type", {})
        for value in kind.get("enum", [kind.get("const")]):
            by_type[value] = name
    return by_type


def _check(family: str, name: str, value: Any) -> None:
    if name == "ResponseStreamEvent" and isinstance(value, dict):
        kind = value.get("type")
        specific = _event_schemas().get(kind) if isinstance(kind, str) else None
        assert specific is not None, f"not a Responses stream event type: {kind!r}"
        name = specific
    error = best_match(_validator(family, name).iter_errors(value))
    if error is None:
        return
    while error.context:  # into anyOf/oneOf: the branch that came closest
        error = best_match(error.context)
    where = "/".join(map(str, error.absolute_path)) or "(top)"
    raise AssertionError(
        f"not a valid {family} {name} at {where}: {error.message[:300]}\n{str(value)[:600]}"
    )


def assert_openai(name: str, value: Any) -> None:
    """``value`` is a valid ``name`` (a component schema of OpenAI's spec)."""
    _check("openai", name, value)


def assert_anthropic(name: str, value: Any) -> None:
    """``value`` is a valid Anthropic ``name``: Message, a stream event, an error…"""
    _check("anthropic", name, value)


def assert_sse(family: str, name: str, body: str) -> list[Any]:
    """Every ``data:`` of an SSE body (but ``[DONE]``) is a valid ``name``; the payloads."""
    payloads = []
    for line in body.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            payload = json.loads(line[6:])
            _check(family, name, payload)
            payloads.append(payload)
    return payloads
