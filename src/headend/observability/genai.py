"""Spans named and shaped by OpenTelemetry's GenAI semantic conventions (version 1.44.0, still
"development"): ``invoke_agent {agent}``, ``chat {model}`` (or ``embeddings {model}``) per
model call, ``execute_tool {tool}`` per tool call. Prompts, answers and tool arguments are
recorded only when the tracing captures content (``Span.capture``), as the conventions' parts.
"""

from __future__ import annotations

from typing import Any

import orjson

from headend.observability.tracing import Kind, Span

Json = dict[str, Any]

# Request fields recorded on a model call's span, by their semantic-convention name.
REQUEST_ATTRIBUTES = {
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "seed": "gen_ai.request.seed",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
}


def agent_span(
    parent: Span, name: str, conversation: str | None, version: int | None = None
) -> Span:
    """An agent's run; ``conversation`` is its session's id."""
    if not parent.recording:
        return parent
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": name,
        "gen_ai.agent.id": name,
    }
    if version is not None:
        attributes["gen_ai.agent.version"] = str(version)
    if conversation is not None:
        attributes["gen_ai.conversation.id"] = conversation
    return parent.child(f"invoke_agent {name}", "internal", attributes)


def model_span(
    parent: Span,
    operation: str,
    provider: str,
    system: str,
    remote: bool,
    model: str,
    body: Json,
) -> Span:
    """One call to a model: an upstream's (a client span) or the embedded one's (internal)."""
    if not parent.recording:
        return parent
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": system,
        "headend.provider": provider,
    }
    if model:
        attributes["gen_ai.request.model"] = model
    for field, attribute in REQUEST_ATTRIBUTES.items():
        value = body.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[attribute] = value
    stop = body.get("stop")
    if stop:
        attributes["gen_ai.request.stop_sequences"] = [stop] if isinstance(stop, str) else stop
    if parent.capture and isinstance(body.get("messages"), list):
        attributes["gen_ai.input.messages"] = as_parts(body["messages"])
    kind: Kind = "client" if remote else "internal"
    return parent.child(f"{operation} {model}".strip(), kind, attributes)


class ModelCallRecord:
    """What a model call answered, gathered from its answer or its chunks as they pass."""

    __slots__ = ("capture", "finish", "response_id", "response_model", "span", "text", "usage")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.capture = span.capture
        self.finish: list[str] = []
        self.usage: Json | None = None
        self.text: list[str] = []
        self.response_id: str | None = None
        self.response_model: str | None = None

    def chunk(self, chunk: Json) -> None:
        self.response_id = self.response_id or chunk.get("id")
        self.response_model = self.response_model or chunk.get("model")
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if choice.get("finish_reason"):
                self.finish.append(choice["finish_reason"])
            if self.capture:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    self.text.append(content)

    def answer(self, answer: Json) -> None:
        if not self.span.recording:
            return
        self.response_id = answer.get("id")
        self.response_model = answer.get("model")
        self.usage = answer.get("usage")
        for choice in answer.get("choices") or ():
            if choice.get("finish_reason"):
                self.finish.append(choice["finish_reason"])
            if self.capture:
                content = (choice.get("message") or {}).get("content")
                if isinstance(content, str):
                    self.text.append(content)

    def end(self) -> None:
        if not self.span.recording:
            return  # nothing recorded; the call's parent span is not this one's to end
        attributes: dict[str, Any] = {}
        if self.finish:
            attributes["gen_ai.response.finish_reasons"] = self.finish
        if isinstance(self.usage, dict):
            for field, attribute in (
                ("prompt_tokens", "gen_ai.usage.input_tokens"),
                ("completion_tokens", "gen_ai.usage.output_tokens"),
            ):
                if isinstance(self.usage.get(field), int):
                    attributes[attribute] = self.usage[field]
        if self.response_id:
            attributes["gen_ai.response.id"] = self.response_id
        if self.response_model:
            attributes["gen_ai.response.model"] = self.response_model
        if self.capture and self.text:
            answer = {"role": "assistant", "content": "".join(self.text)}
            attributes["gen_ai.output.messages"] = as_parts([answer])
        self.span.set(attributes)
        self.span.end()


def tool_span(parent: Span, name: str, call_id: str, arguments: str) -> Span:
    if not parent.recording:
        return parent
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.call.id": call_id,
        "gen_ai.tool.type": "function",
    }
    if parent.capture:
        attributes["gen_ai.tool.call.arguments"] = arguments
    return parent.child(f"execute_tool {name}", "internal", attributes)


def tool_result(span: Span, outcome: str, result: str) -> None:
    if span.capture:
        span.set({"gen_ai.tool.call.result": result})
    if outcome != "ok":
        span.fail(outcome)
    span.end()


def as_parts(messages: list[Any]) -> str:
    """OpenAI chat messages as the conventions' messages of parts, in JSON."""
    found = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        parts: list[Json] = []
        content = message.get("content")
        if isinstance(content, str) and content:
            parts.append({"type": "text", "content": content})
        elif isinstance(content, list):
            parts += [
                {"type": "text", "content": part.get("text", "")}
                for part in content
                if isinstance(part, dict) and part.get("type") == "text"
            ]
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "arguments": function.get("arguments"),
                }
            )
        role = message.get("role")
        if role == "tool":
            parts = [
                {
                    "type": "tool_call_response",
                    "id": message.get("tool_call_id"),
                    "response": content,
                }
            ]
        found.append({"role": role, "parts": parts})
    return orjson.dumps(found).decode()
