"""What a widget visitor's chat request may say: which agent, the visitor's messages,
whether to stream, and which of their sessions to continue.

The rest is the agent's: sampling fields, ``tools``, ``tool_choice``, system and developer
messages, tool messages and ``max_iterations`` from a browser are dropped (and named in the
``x-headend-ignored-fields`` response header), as AnythingLLM's embeds and OpenAI's ChatKit
do. A message keeps only its role and content.
"""

from __future__ import annotations

from typing import Any

KEPT_FIELDS = frozenset({"model", "messages", "stream", "session_id"})
KEPT_STREAM_OPTIONS = frozenset({"include_usage", "include_tool_progress", "tool_progress_format"})
VISITOR_ROLES = frozenset({"user", "assistant"})


def visitor_request(body: Any) -> tuple[Any, list[str]]:
    """The request as the agent will see it, and what was dropped from it."""
    if not isinstance(body, dict):
        return body, []
    kept = {key: value for key, value in body.items() if key in KEPT_FIELDS}
    dropped = [key for key in body if key not in KEPT_FIELDS and key != "stream_options"]
    options = body.get("stream_options")
    if isinstance(options, dict):
        kept["stream_options"] = {k: v for k, v in options.items() if k in KEPT_STREAM_OPTIONS}
        dropped += [f"stream_options.{k}" for k in options if k not in KEPT_STREAM_OPTIONS]
    messages = body.get("messages")
    if isinstance(messages, list):
        mine = [m for m in messages if isinstance(m, dict) and m.get("role") in VISITOR_ROLES]
        if len(mine) < len(messages):
            dropped.append("messages (other than user and assistant)")
        if any(set(m) - {"role", "content"} for m in mine):
            dropped.append("messages[].(fields other than role and content)")
        kept["messages"] = [{k: m[k] for k in ("role", "content") if k in m} for m in mine]
    return kept, dropped
