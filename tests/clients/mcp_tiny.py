"""A stdio MCP server with the standard library only, so that it starts in milliseconds
(Codex CLI sends its first request without waiting for MCP servers; one that imports the
SDK loses that race). Tools: ``add(a, b)``; ``note(text)``, which appends to
``$MCP_NOTES`` as proof that the tool really ran. Every call is appended to ``$MCP_CALLS``
as a JSON line."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

TOOLS = [
    {
        "name": "add",
        "description": "Add two integers.",
        "inputSchema": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
    {
        "name": "note",
        "description": "Write a note.",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
    },
]


def call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    if os.environ.get("MCP_CALLS"):
        with open(os.environ["MCP_CALLS"], "a", encoding="utf-8") as log:
            log.write(json.dumps({"name": name, "arguments": arguments}) + "\n")
    if name == "add":
        total = int(arguments.get("a", 0)) + int(arguments.get("b", 0))
        return {"content": [{"type": "text", "text": str(total)}], "isError": False}
    if name == "note":
        with open(os.environ.get("MCP_NOTES", os.devnull), "a", encoding="utf-8") as notes:
            notes.write(str(arguments.get("text", "")) + "\n")
        return {"content": [{"type": "text", "text": "noted"}], "isError": False}
    return {"content": [{"type": "text", "text": f"unknown tool {name}"}], "isError": True}


def answer(message: dict[str, Any]) -> dict[str, Any] | None:
    method = message.get("method")
    params = message.get("params") or {}
    if method == "initialize":
        return {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "tiny", "version": "1.0"},
        }
    if method == "tools/list":
        return {"tools": TOOLS}
    if method == "tools/call":
        return call(str(params.get("name")), params.get("arguments") or {})
    if method == "ping":
        return {}
    empty = {"resources/list": "resources", "resources/templates/list": "resourceTemplates"}
    if method in empty or method == "prompts/list":
        return {empty.get(str(method), "prompts"): []}
    return None


def main() -> None:
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if not isinstance(message, dict) or message.get("id") is None:
            continue  # a notification
        result = answer(message)
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": message["id"]}
        if result is None:
            reply["error"] = {"code": -32601, "message": f"no method {message.get('method')}"}
        else:
            reply["result"] = result
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
