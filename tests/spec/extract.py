"""Cut the schemas headend's answers are checked against out of OpenAI's OpenAPI spec.

    python tests/spec/extract.py path/to/openai-openapi.json > tests/spec/openai-schemas.json

Keeps the component schemas reachable from ``ROOTS``, drops descriptions and examples (the
spec is 3 MB; this is what the tests need of it) and turns OpenAPI's ``nullable: true``,
which JSON Schema 2020-12 ignores, into ``anyOf`` with ``null``. The tests read only the
output, so a clone of the repository needs nothing else.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOTS = [
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "CreateCompletionResponse",
    "Response",
    "ResponseStreamEvent",
    "ResponseItemList",
    "ListModelsResponse",
    "Model",
    "ErrorResponse",
    # requests: tests/e2e/test_spec_fuzz.py generates bodies from them
    "CreateChatCompletionRequest",
    "CreateResponse",
    "CreateCompletionRequest",
    "CreateEmbeddingRequest",
]
DROPPED = {"description", "example", "examples", "title", "x-oaiMeta", "x-oaiTypeLabel"}


def refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            found.add(node["$ref"].rsplit("/", 1)[-1])
        for value in node.values():
            refs(value, found)
    elif isinstance(node, list):
        for value in node:
            refs(value, found)


def clean(node: Any) -> Any:
    """A schema without prose; ``properties`` keeps its keys (a field may be called
    ``description``)."""
    if isinstance(node, list):
        return [clean(value) for value in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: ({name: clean(s) for name, s in v.items()} if k == "properties" else clean(v))
        for k, v in node.items()
        if k not in DROPPED and k != "nullable"
    }
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    schemas = spec["components"]["schemas"]
    keep: set[str] = set()
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        found: set[str] = set()
        refs(schemas[name], found)
        todo += sorted(found - keep)
    out = {"source": "OpenAI OpenAPI spec, components/schemas", "schemas": {}}
    out["schemas"] = {name: clean(schemas[name]) for name in sorted(keep)}
    json.dump(out, sys.stdout, separators=(",", ":"), sort_keys=True)


if __name__ == "__main__":
    main()
