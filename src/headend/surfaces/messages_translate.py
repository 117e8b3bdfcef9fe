"""Anthropic's Messages API in front of the chat run: its requests as chat requests, chat
answers and chunks as its messages and named stream events."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import orjson

from headend.errors import InvalidRequest
from headend.pricing import cache_tokens, tokens
from headend.providers.anthropic_translate import text_of, tool_call_of, tool_use_block
from headend.schemas.anthropic.messages_api import MessagesRequest
from headend.schemas.validation import validate
from headend.surfaces.citations import search_result_citations
from headend.surfaces.fields import block_text
from headend.tools.base import Source
from headend.types import Json

# chat finish_reason -> Anthropic stop_reason
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
# Anthropic fields with a chat equivalent of another name
RENAMED = {"stop_sequences": "stop"}
PASSED = ("max_tokens", "temperature", "top_p", "top_k", "stream", "session_id")


def new_message_id() -> str:
    return f"msg_{secrets.token_hex(12)}"


def _image_part(block: Json, where: str) -> Json:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = source.get("url", "")
    else:
        raise InvalidRequest("An image needs a base64 or url source.", param=f"{where}.source")
    return {"type": "image_url", "image_url": {"url": url}}


def _user_messages(content: Any, where: str) -> list[Json]:
    """A user turn: tool results become ``tool`` messages, the rest one ``user`` message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise InvalidRequest("'content' must be a string or a list of blocks.", param=where)
    out: list[Json] = []
    parts: list[Json] = []
    for index, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        at = f"{where}[{index}]"
        if kind == "text":
            parts.append({"type": "text", "text": block_text(block, at)})
        elif kind == "image":
            parts.append(_image_part(block, at))
        elif kind == "tool_result":
            result = tool_result_text(block.get("content"))
            if block.get("is_error"):
                result = f"Error: {result}"
            out.append(
                {"role": "tool", "tool_call_id": block.get("tool_use_id", ""), "content": result}
            )
        elif kind in ("thinking", "redacted_thinking", "document", "search_result"):
            continue
        else:
            raise InvalidRequest(f"Unsupported content block type {kind!r}.", param=f"{at}.type")
    if parts:
        only_text = all(part["type"] == "text" for part in parts)
        text = "".join(part["text"] for part in parts) if only_text else None
        out.append({"role": "user", "content": text if only_text else parts})
    return out


def _assistant_message(content: Any, where: str) -> Json:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise InvalidRequest("'content' must be a string or a list of blocks.", param=where)
    text = []
    calls = []
    for index, block in enumerate(content):
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            text.append(block_text(block, f"{where}[{index}]"))
        elif block.get("type") == "tool_use":
            calls.append(tool_call_of(block))
    message: Json = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def tool_result_text(content: Any) -> str:
    """A tool result's text; a ``tool_reference`` block (Claude Code's answer to a tool
    search: the tool is now loaded) is named so the model sees what happened."""
    if not isinstance(content, list):
        return text_of(content)
    texts = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_reference":
            texts.append(f"[tool loaded: {block.get('tool_name', '')}]")
        elif isinstance(block.get("text"), str):
            texts.append(block["text"])
    return "\n".join(texts)


def system_text(content: Any) -> str:
    """System text from a string or text blocks: blocks are separate paragraphs, never glued
    together (Claude Code sends its prompt as several blocks)."""
    if isinstance(content, list):
        texts = [str(block.get("text") or "") for block in content if isinstance(block, dict)]
        return "\n\n".join(text for text in texts if text)
    return text_of(content)


def _tool_choice(choice: Any) -> Any:
    if not isinstance(choice, dict):
        raise InvalidRequest("'tool_choice' must be an object.", param="tool_choice")
    kind = choice.get("type")
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name", "")}}
    mapped = {"auto": "auto", "any": "required", "none": "none"}.get(str(kind))
    if mapped is None:
        raise InvalidRequest(f"Unsupported tool_choice type {kind!r}.", param="tool_choice.type")
    return mapped


def to_chat(body: Any, *, counting: bool = False) -> Json:
    """A Messages request as a chat completions request; ``counting``: for count_tokens,
    which takes no ``max_tokens``."""
    validate(MessagesRequest, body)  # every field read below has its type from here on
    model = body["model"]
    max_tokens = body.get("max_tokens")
    if not counting and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise InvalidRequest("'max_tokens' must be a positive integer.", param="max_tokens")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("'messages' must be a non-empty list.", param="messages")
    messages: list[Json] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": system_text(system)})
    for index, message in enumerate(raw):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages.{index}: Input should be an object.", param=where)
        role = message.get("role")
        if role == "user":
            messages += _user_messages(message.get("content"), f"{where}.content")
        elif role == "assistant":
            messages.append(_assistant_message(message.get("content"), f"{where}.content"))
        elif role == "system":
            # Mid-conversation instructions (Claude Code sends them): where they stand; a
            # provider that takes one system prompt merges them into it, in order.
            messages.append({"role": "system", "content": system_text(message.get("content"))})
        else:
            raise InvalidRequest(
                f'messages: Unexpected role "{role}". Allowed roles are "user", "assistant" '
                'or "system".',
                param=f"{where}.role",
            )
    chat: Json = {"model": model, "messages": messages}
    for key in PASSED:
        if body.get(key) is not None:
            chat[key] = body[key]
    for key, renamed in RENAMED.items():
        if body.get(key):
            chat[renamed] = body[key]
    tools = body.get("tools")
    if tools:
        chat["tools"] = [_function_tool(tool, i) for i, tool in enumerate(tools)]
        if body.get("tool_choice") is not None:
            chat["tool_choice"] = _tool_choice(body["tool_choice"])
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        chat["user"] = metadata["user_id"]
    return chat


def _function_tool(tool: Any, index: int) -> Json:
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
        raise InvalidRequest("A tool needs a 'name'.", param=f"tools[{index}]")
    return {
        "type": "function",
        "function": {
            "name": tool["name"],
            "description": tool.get("description", ""),
            "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
        },
    }


def usage_of(usage: Any) -> Json:
    """Anthropic's usage, cache counts included (Claude Code reads them): its input tokens
    leave out those read from or written to the cache, which OpenAI's prompt tokens count."""
    prompt, completion = tokens(usage)
    cached, written = cache_tokens(usage)
    return {
        "input_tokens": max(prompt - cached - written, 0),
        "output_tokens": completion,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
    }


def to_message(
    answer: Json, model: str, sources: Sequence[Source] = (), refusal_stop: str = "refusal"
) -> Json:
    """A ``chat.completion`` as an Anthropic ``message``; ``sources``: the passages its
    text may cite (``surfaces.citations``); ``refusal_stop``: the stop reason a guardrail's
    refusal gives (``refusal_stop_reason``)."""
    choice = answer["choices"][0]
    reply = choice.get("message") or {}
    content: list[Json] = []
    text = reply.get("content") or reply.get("refusal")  # a refusal is said, stop_reason refusal
    if text:
        block: Json = {"type": "text", "text": text}
        cited = search_result_citations(text, sources) if sources else []
        if cited:
            block["citations"] = cited
        content.append(block)
    content += [tool_use_block(call) for call in reply.get("tool_calls") or []]
    message: Json = {
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason"), refusal_stop),
        "stop_sequence": None,
        "usage": usage_of(answer.get("usage")),
    }
    if reply.get("refusal") and refusal_stop == "refusal":
        message["stop_details"] = stop_details(reply["refusal"])
    if answer.get("approval_requests"):  # headend's extension, as on the chat answer
        message["approval_requests"] = answer["approval_requests"]
    return message


def stop_reason(finish: str | None, refusal_stop: str = "refusal") -> str:
    if finish == "content_filter":
        return refusal_stop
    return STOP_REASONS.get(finish or "stop", "end_turn")


def refusal_stop_reason(beta: str | None) -> str:
    """The stop reason of a guardrail's refusal for a client: ``refusal``, but for Claude
    Code (it declares the ``claude-code-…`` beta), which reads ``refusal`` as the model's
    own safeguards and shows its own words (and fails) instead of the refusal's: to it the
    refusal is said as the answer, ``end_turn``."""
    return "end_turn" if beta is not None and "claude-code-" in beta else "refusal"


def stop_details(refusal: str) -> Json:
    """Why a message stopped with ``refusal``: a guardrail's words, no policy category."""
    return {"type": "refusal", "category": None, "explanation": refusal}


class MessageEvents:
    """Chat chunks in, Anthropic's named stream events out; one per stream."""

    def __init__(self, model: str, refusal_stop: str = "refusal") -> None:
        self.model = model
        self.refusal_stop = refusal_stop
        self.id = new_message_id()
        self.started = False
        self.block = -1  # index of the open content block
        self.kind: str | None = None  # its type: text or tool_use
        self.tools: dict[int, int] = {}  # chat tool call index -> block index
        self.stop_reason = "end_turn"
        self.usage: Json = {}
        self.text: list[str] = []  # the open text block's
        self.refusal: list[str] = []  # a guardrail's refusal, said as text too

    def start(self) -> list[tuple[str, Json]]:
        self.started = True
        message: Json = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_of(None),
        }
        return [("message_start", {"type": "message_start", "message": message}), PING]

    def _open(self, kind: str, block: Json) -> list[tuple[str, Json]]:
        events = self._close()
        self.block += 1
        self.kind = kind
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": self.block, "content_block": block},
            )
        )
        return events

    def _close(self) -> list[tuple[str, Json]]:
        if self.kind is None:
            return []
        self.kind = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self.block})]

    def _delta(self, delta: Json) -> tuple[str, Json]:
        return (
            "content_block_delta",
            {"type": "content_block_delta", "index": self.block, "delta": delta},
        )

    def feed(self, chunk: Json) -> list[tuple[str, Json]]:
        events = [] if self.started else self.start()
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content") or delta.get("refusal")
            if delta.get("refusal"):
                self.refusal.append(delta["refusal"])
            if text:
                if self.kind != "text":
                    events += self._open("text", {"type": "text", "text": ""})
                    self.text = []
                self.text.append(text)
                events.append(self._delta({"type": "text_delta", "text": text}))
            for call in delta.get("tool_calls") or ():
                events += self._tool_delta(call)
            if choice.get("finish_reason"):
                self.stop_reason = stop_reason(choice["finish_reason"], self.refusal_stop)
        return events

    def _tool_delta(self, call: Json) -> list[tuple[str, Json]]:
        events: list[tuple[str, Json]] = []
        index = call.get("index", 0)
        function = call.get("function") or {}
        if index not in self.tools:
            block = {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{secrets.token_hex(12)}",
                "name": function.get("name", ""),
                "input": {},
            }
            events += self._open("tool_use", block)
            self.tools[index] = self.block
        if function.get("arguments"):
            events.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": self.tools[index],
                        "delta": {
                            "type": "input_json_delta",
                            "partial_json": function["arguments"],
                        },
                    },
                )
            )
        return events

    def finish(self, sources: Sequence[Source] = ()) -> list[tuple[str, Json]]:
        """The closing events; ``sources``: the passages the open text block may cite."""
        events = [] if self.started else self.start()
        if self.kind == "text" and sources:
            for citation in search_result_citations("".join(self.text), sources):
                events.append(self._delta({"type": "citations_delta", "citation": citation}))
        events += self._close()
        delta: Json = {"stop_reason": self.stop_reason, "stop_sequence": None}
        if self.refusal and self.stop_reason == "refusal":
            delta["stop_details"] = stop_details("".join(self.refusal))
        events.append(
            (
                "message_delta",
                {"type": "message_delta", "delta": delta, "usage": usage_of(self.usage)},
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return events


PING: tuple[str, Json] = ("ping", {"type": "ping"})


def event_frame(name: str, data: Json) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
