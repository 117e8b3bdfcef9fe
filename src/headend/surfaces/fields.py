"""Reading the fields every surface's content blocks share, with a 400 for a wrong type."""

from __future__ import annotations

from typing import Any

from headend.errors import InvalidRequest


def block_text(block: dict[str, Any], where: str) -> str:
    """A text block's ``text``: a string (missing counts as empty), never null or a number."""
    text = block.get("text", "")
    if not isinstance(text, str):
        raise InvalidRequest(f"'{where}.text' must be a string.", param=f"{where}.text")
    return text


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or the ``text`` of its parts (chat,
    Responses and A2A parts alike); anything else is no text."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = (part.get("text") for part in content if isinstance(part, dict))
    return "".join(text for text in texts if isinstance(text, str))
