"""OpenAI chat shapes to Anthropic Messages shapes and back. Pure functions, no I/O."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson

from headend.errors import InvalidRequest, UpstreamFailure
from headend.providers.http import redact
from headend.types import Json

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Anthropic's temperature stops at 1; OpenAI's goes to 2.
MAX_TEMPERATURE = 1.0


def text_of(content: Any) -> str:
    """The text of a message's content, whether a string or a list of parts or blocks."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text") or "") for part in content if isinstance(part, dict))
    return str(content)


def _image_block(part: Json, where: str) -> Json:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise InvalidRequest("An image_url part needs a url.", param=where)
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";", 1)[0]
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _user_blocks(content: Any, where: str) -> list[Json]:
    if content is None or isinstance(content, str):
        return [{"type": "text", "text": content or ""}]
    blocks: list[Json] = []
    for index, part in enumerate(content if isinstance(content, list) else []):
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": str(part.get("text") or "")})
        elif kind == "image_url":
            blocks.append(_image_block(part, f"{where}[{index}]"))
        else:
            raise InvalidRequest(
                f"Content parts of type '{kind}' cannot be sent to an Anthropic model.",
                param=f"{where}[{index}].type",
            )
    return blocks


def tool_use_block(call: Json) -> Json:
    """An OpenAI tool call as an Anthropic ``tool_use`` block."""
    function = call.get("function") or {}
    arguments = function.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        parsed = {"_raw": arguments}
    return {
        "type": "tool_use",
        "id": call.get("id", ""),
        "name": function.get("name", ""),
        "input": parsed if isinstance(parsed, dict) else {"value": parsed},
    }


def tool_call_of(block: Json) -> Json:
    """An Anthropic ``tool_use`` block as an OpenAI tool call."""
    return {
        "id": block.get("id", ""),
        "type": "function",
        "function": {
            "name": block.get("name", ""),
            "arguments": orjson.dumps(block.get("input") or {}).decode(),
        },
    }


def _append(messages: list[Json], role: str, blocks: list[Json]) -> None:
    # Anthropic wants user and assistant turns to alternate: merge neighbours.
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _tool_choice(choice: Any, parallel: Any) -> Json | None:
    if choice is None and parallel is None:
        return None
    if choice in (None, "auto"):
        out: Json = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    elif isinstance(choice, dict):
        out = {"type": "tool", "name": (choice.get("function") or {}).get("name", "")}
    else:
        raise InvalidRequest(f"Unsupported tool_choice {choice!r}.", param="tool_choice")
    if parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


def to_anthropic(body: Json, model: str, default_max_tokens: int) -> Json:
    """An OpenAI chat request as an Anthropic Messages request."""
    system: list[str] = []
    messages: list[Json] = []
    for index, message in enumerate(body.get("messages") or []):
        role = message.get("role")
        content = message.get("content")
        where = f"messages[{index}].content"
        if role in ("system", "developer"):
            system.append(text_of(content))
        elif role == "user":
            _append(messages, "user", _user_blocks(content, where))
        elif role == "assistant":
            blocks: list[Json] = []
            text = text_of(content)
            if text:
                blocks.append({"type": "text", "text": text})
            blocks += [tool_use_block(call) for call in message.get("tool_calls") or []]
            _append(messages, "assistant", blocks or [{"type": "text", "text": ""}])
        elif role == "tool":
            _append(
                messages,
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": message.get("tool_call_id", ""),
                        "content": text_of(content),
                    }
                ],
            )
        else:
            raise InvalidRequest(f"Unsupported role {role!r}.", param=f"messages[{index}].role")
    out: Json = {
        "model": model,
        "messages": messages,
        "max_tokens": body.get("max_completion_tokens")
        or body.get("max_tokens")
        or default_max_tokens,
    }
    if system:
        out["system"] = "\n\n".join(system)
    if body.get("temperature") is not None:
        out["temperature"] = min(float(body["temperature"]), MAX_TEMPERATURE)
    for key in ("top_p", "top_k"):
        if body.get(key) is not None:
            out[key] = body[key]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    tools = body.get("tools")
    if tools:
        out["tools"] = [
            {
                "name": tool["function"]["name"],
                "description": tool["function"].get("description", ""),
                "input_schema": tool["function"].get("parameters")
                or {"type": "object", "properties": {}},
            }
            for tool in tools
            if isinstance(tool, dict) and isinstance(tool.get("function"), dict)
        ]
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None and tools:
        out["tool_choice"] = choice
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    return out


def _usage(usage: Json, start: Json | None = None) -> Json:
    """Anthropic's usage as OpenAI's: its input tokens leave out what was read from and
    written to the cache, OpenAI's prompt tokens count them (and say how many were cached).
    ``start``: a stream's message_start usage, where the input counts are."""
    inputs = start if start is not None else usage
    read = _number(inputs.get("cache_read_input_tokens"))
    written = _number(inputs.get("cache_creation_input_tokens"))
    prompt_tokens = _number(inputs.get("input_tokens")) + read + written
    completion = _number(usage.get("output_tokens"))
    out: Json = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
    }
    if read or written:
        out["prompt_tokens_details"] = {"cached_tokens": read, "cache_write_tokens": written}
    return out


def _number(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def from_anthropic(message: Json, model: str) -> Json:
    """An Anthropic message as an OpenAI ``chat.completion``."""
    blocks = message.get("content") or []
    text = "".join(str(b.get("text") or "") for b in blocks if b.get("type") == "text")
    tool_calls = [tool_call_of(b) for b in blocks if b.get("type") == "tool_use"]
    reply: Json = {
        "role": "assistant",
        "content": text if text or not tool_calls else None,
        "refusal": None,
    }
    if tool_calls:
        reply["tool_calls"] = tool_calls
    return {
        "id": f"chatcmpl-{message.get('id', '')}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": STOP_REASONS.get(message.get("stop_reason") or "", "stop"),
            }
        ],
        "usage": _usage(message.get("usage") or {}),
    }


class StreamTranslator:
    """Anthropic stream events in, OpenAI chunks out; one instance per stream."""

    def __init__(self, provider: str, model: str, secrets: Sequence[str] = ()) -> None:
        self.provider = provider
        self.secrets = secrets
        self.model = model
        self.id = "chatcmpl-"
        self.created = int(time.time())
        self.start_usage: Json = {}  # message_start's: the input counts
        self.usage: Json = {}
        self.tool_index: dict[int, int] = {}
        self.done = False

    def _chunk(self, delta: Json, finish: str | None = None) -> Json:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def feed(self, event: Json) -> list[Json]:
        kind = event.get("type")
        handler = getattr(self, f"_on_{kind}", None)
        return handler(event) if handler is not None else []

    def _on_message_start(self, event: Json) -> list[Json]:
        message = event.get("message") or {}
        self.id = f"chatcmpl-{message.get('id', '')}"
        self.start_usage = message.get("usage") or {}
        return [self._chunk({"role": "assistant", "content": "", "refusal": None})]

    def _on_content_block_start(self, event: Json) -> list[Json]:
        block = event.get("content_block") or {}
        if block.get("type") == "tool_use":
            index = len(self.tool_index)
            self.tool_index[event.get("index", 0)] = index
            return [
                self._chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": block.get("id", ""),
                                "type": "function",
                                "function": {"name": block.get("name", ""), "arguments": ""},
                            }
                        ]
                    }
                )
            ]
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        return []

    def _on_content_block_delta(self, event: Json) -> list[Json]:
        delta = event.get("delta") or {}
        if delta.get("type") == "text_delta":
            return [self._chunk({"content": str(delta.get("text") or "")})]
        if delta.get("type") == "input_json_delta":
            index = self.tool_index.get(event.get("index", 0), 0)
            return [
                self._chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "function": {"arguments": delta.get("partial_json", "")},
                            }
                        ]
                    }
                )
            ]
        return []

    def _on_message_delta(self, event: Json) -> list[Json]:
        self.usage = event.get("usage") or {}
        reason = (event.get("delta") or {}).get("stop_reason") or ""
        return [self._chunk({}, finish=STOP_REASONS.get(reason, "stop"))]

    def _on_message_stop(self, event: Json) -> list[Json]:
        self.done = True
        return [
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": _usage(self.usage, start=self.start_usage),
            }
        ]

    def _on_error(self, event: Json) -> list[Json]:
        error = event.get("error") or {}
        overloaded = error.get("type") in ("overloaded_error", "api_error")
        raise UpstreamFailure(
            f"provider '{self.provider}' reported an error in its stream: "
            + redact(str(error.get("message", "unknown error")), self.secrets),
            retryable=overloaded,
        )
