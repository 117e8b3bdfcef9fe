"""The Responses API's ``tools`` as chat tools, and the model's calls back as output items.

- ``function`` tools pass as they are.
- ``namespace`` tools (what Codex CLI offers its MCP servers and sub-agents as) offer each
  inner function to the model under one flat name, ``<namespace>__<name>``; a call comes back
  as a ``function_call`` item with ``namespace`` and the inner ``name``, and history items
  that carry a ``namespace`` are flattened the same way, so the model sees one name per tool.
- ``custom`` tools (free-form input, such as Codex's ``apply_patch``) are offered as a
  function taking one string, ``input``; a call comes back as a ``custom_tool_call`` item.
- ``file_search`` is headend's to run, over its own vector stores: the model sees a function
  ``file_search`` taking ``query`` (``tools.builtin.file_search``).
- Hosted tools headend cannot run (``web_search``, ``code_interpreter``,
  ``image_generation``, ``computer_use``…) are left out of what the model sees and named in
  the ``x-headend-dropped-tools`` header; a ``tool_choice`` that forces one is a 400.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from headend.errors import InvalidRequest, UnsupportedValue
from headend.schemas.openai.vector_stores_api import FileSearchTool
from headend.types import Json

SEPARATOR = "__"
MAX_NAME = 64  # what OpenAI-compatible upstreams accept for a function name
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
CUSTOM_PARAMETERS: Json = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The tool's whole input."}},
    "required": ["input"],
}


def flat_name(namespace: str | None, name: str) -> str:
    """The one name the model sees for ``name`` in ``namespace``: stable across turns."""
    if not namespace:
        return name
    joined = _UNSAFE.sub("_", f"{namespace}{SEPARATOR}{name}")
    if len(joined) <= MAX_NAME:
        return joined
    digest = hashlib.sha256(joined.encode()).hexdigest()[:8]
    return f"{joined[: MAX_NAME - 9]}_{digest}"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a flat name came from: its namespace, its own name, and its kind."""

    namespace: str | None
    name: str
    custom: bool = False


@dataclass(slots=True)
class OfferedTools:
    """A request's tools as chat tools, and how to turn calls to them back into items."""

    chat: list[Json] = field(default_factory=list)
    origins: dict[str, Origin] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    file_search: FileSearchTool | None = None  # headend runs it (see tools.builtin)
    file_search_param: str = "tools"

    def call_item(self, item_id: str, call_id: str, name: str, arguments: str, status: str) -> Json:
        """The output item for a call the model made to the flat ``name``."""
        origin = self.origins.get(name, Origin(None, name))
        if origin.custom:
            item: Json = {
                "type": "custom_tool_call",
                "id": item_id,
                "call_id": call_id,
                "name": origin.name,
                "input": custom_input(arguments),
                "status": status,
            }
        else:
            item = {
                "type": "function_call",
                "id": item_id,
                "call_id": call_id,
                "name": origin.name,
                "arguments": arguments,
                "status": status,
            }
        if origin.namespace is not None:
            item["namespace"] = origin.namespace
        return item

    def is_custom(self, name: str) -> bool:
        origin = self.origins.get(name)
        return origin is not None and origin.custom


def custom_input(arguments: str) -> str:
    """A custom tool's input from the arguments the model wrote for its function stand-in."""
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
    if isinstance(parsed, dict) and isinstance(parsed.get("input"), str):
        return str(parsed["input"])
    return arguments


def custom_arguments(text: str) -> str:
    return orjson.dumps({"input": text}).decode()


def request_tools(body: Json) -> OfferedTools:
    """The tools a request offers: its ``tools``, and those of ``additional_tools`` input items
    (where Codex CLI's "responses-lite" requests put them)."""
    offered = offered_tools(body.get("tools"))
    items = body.get("input")
    for index, item in enumerate(items if isinstance(items, list) else ()):
        if isinstance(item, dict) and item.get("type") == "additional_tools":
            offered_tools(item.get("tools"), f"input[{index}].tools", offered)
    return offered


def offered_tools(
    tools: Any, param: str = "tools", offered: OfferedTools | None = None
) -> OfferedTools:
    offered = offered if offered is not None else OfferedTools()
    if not tools:
        return offered
    if not isinstance(tools, list):
        raise InvalidRequest(f"'{param}' must be a list.", param=param)
    for index, tool in enumerate(tools):
        where = f"{param}[{index}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or not isinstance(kind, str):
            raise InvalidRequest("Each tool must be an object with a 'type'.", param=where)
        if kind == "namespace":
            namespace = tool.get("name")
            inner = tool.get("tools")
            if not isinstance(namespace, str) or not namespace or not isinstance(inner, list):
                raise InvalidRequest("A namespace tool needs a 'name' and 'tools'.", param=where)
            for position, member in enumerate(inner):
                _add(offered, member, namespace, f"{where}.tools[{position}]")
        elif kind in ("function", "custom"):
            _add(offered, tool, None, where)
        elif kind == "file_search":
            if offered.file_search is not None:
                raise InvalidRequest("Only one file_search tool may be offered.", param=where)
            offered.file_search = _file_search(tool, where)
            offered.file_search_param = f"{where}.vector_store_ids"
        else:
            offered.dropped.append(kind)
    return offered


def _file_search(tool: Json, where: str) -> FileSearchTool:
    try:
        return FileSearchTool.model_validate(tool)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in (where, *first["loc"]))
        raise InvalidRequest(f"Invalid file_search tool: {first['msg']}.", param=param) from None


def _add(offered: OfferedTools, tool: Any, namespace: str | None, where: str) -> None:
    kind = tool.get("type") if isinstance(tool, dict) else None
    name = tool.get("name") if isinstance(tool, dict) else None
    if kind not in ("function", "custom") or not isinstance(name, str) or not name:
        raise InvalidRequest("Expected a function or custom tool with a 'name'.", param=where)
    flat = flat_name(namespace, name)
    custom = kind == "custom"
    function: Json = {
        "name": flat,
        "parameters": CUSTOM_PARAMETERS
        if custom
        else (tool.get("parameters") or {"type": "object", "properties": {}}),
    }
    description = tool.get("description")
    if custom:
        description = (description or "") + "\nPut the whole input in the 'input' string."
    if description:
        function["description"] = description.strip()
    if not custom and tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    offered.chat.append({"type": "function", "function": function})
    offered.origins[flat] = Origin(namespace, name, custom)


HOSTED_CHOICES = (
    "web_search",
    "web_search_preview",
    "web_search_preview_2025_03_11",
    "file_search",
    "code_interpreter",
    "image_generation",
    "computer_use_preview",
    "computer_use",
    "mcp",
    "local_shell",
    "shell",
    "apply_patch",
)


def chat_tool_choice(choice: Any, file_search: bool = False) -> Any:
    """A Responses ``tool_choice`` as a chat one (``file_search``: headend runs that tool)."""
    if choice in ("auto", "none", "required"):
        return choice
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "file_search" and file_search:
        return {"type": "function", "function": {"name": "file_search"}}
    if kind in ("function", "custom") and isinstance(choice.get("name"), str):
        name = flat_name(choice.get("namespace"), choice["name"])
        return {"type": "function", "function": {"name": name}}
    if kind == "allowed_tools" and choice.get("mode") in ("auto", "required"):
        return choice["mode"]
    if kind in HOSTED_CHOICES:
        raise UnsupportedValue(
            f"'tool_choice' forces the hosted tool {kind!r}, which headend cannot run.",
            param="tool_choice",
        )
    raise UnsupportedValue("Unsupported 'tool_choice'.", param="tool_choice")
