"""A streamed reply put back together: the assistant message, finish reason, content
logprobs and usage that a run of ``chat.completion.chunk`` dicts add up to."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from headend.types import Json


@dataclass(slots=True)
class Reply:
    """One model call's streamed reply, put back together."""

    text: list[str] = field(default_factory=list)
    calls: dict[int, Json] = field(default_factory=dict)
    finish: str | None = None
    logprobs: list[Json] | None = None  # the content tokens', when the chunks carry them
    usage: Json | None = None

    def add_calls(self, deltas: list[Json]) -> None:
        for delta in deltas:
            call = self.calls.setdefault(
                delta.get("index", 0),
                {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
            )
            call["id"] = delta.get("id") or call["id"]
            function = delta.get("function") or {}
            call["function"]["name"] += function.get("name") or ""
            call["function"]["arguments"] += function.get("arguments") or ""

    def tool_calls(self) -> list[Json]:
        return [self.calls[index] for index in sorted(self.calls)]

    def absorb(self, chunk: Json) -> None:
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("tool_calls"):
                self.add_calls(delta["tool_calls"])
            if delta.get("content"):
                self.text.append(delta["content"])
            logprobs = choice.get("logprobs")
            if logprobs is not None:
                if self.logprobs is None:
                    self.logprobs = []
                self.logprobs.extend(logprobs.get("content") or [])
            self.finish = choice.get("finish_reason") or self.finish
        if chunk.get("usage"):
            self.usage = chunk["usage"]

    def message(self) -> Json:
        """The assistant message these chunks made."""
        message: Json = {"role": "assistant", "content": "".join(self.text) or None}
        if self.calls:
            message["tool_calls"] = self.tool_calls()
        elif message["content"] is None:
            message["content"] = ""
        return message


def chat_completion(
    model: str, message: Json, finish: str, usage: Any, logprobs: Json | None = None
) -> Json:
    """A ``chat.completion`` holding one answer, in the official shape."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": logprobs, "finish_reason": finish}
        ],
        "usage": usage,
    }
