"""``POST /v1/chat/completions`` shapes.

Requests accept every OpenAI field (unknown ones are kept and logged, never rejected) with
strict types, so ``"temperature": "hot"`` is a 400 naming the field rather than a coercion.
Responses are built as dicts by the providers, in the official shapes (nullable-but-required
fields such as ``logprobs`` and ``refusal`` included), so an upstream's answer passes through
untouched.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from headend.schemas.base import RequestShape

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


REQUEST_SAMPLING = (
    "temperature",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "top_k",
    "min_p",
    "typical_p",
    "repeat_penalty",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
)


class ImageURL(RequestShape):
    url: str
    detail: str | None = None


class ContentPart(RequestShape):
    type: str
    text: str | None = None
    image_url: ImageURL | None = None


class FunctionCall(RequestShape):
    name: str
    arguments: str | dict[str, Any] = "{}"  # a string on the wire; some clients send an object


class ToolCall(RequestShape):
    id: str = ""
    type: str = "function"
    function: FunctionCall


class ChatMessage(RequestShape):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class FunctionDefinition(RequestShape):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ChatTool(RequestShape):
    type: str
    function: FunctionDefinition | None = None

    @model_validator(mode="after")
    def _function_tools_define_one(self) -> ChatTool:
        if self.type == "function" and self.function is None:
            raise ValueError("a function tool needs 'function'")
        return self


class FunctionName(RequestShape):
    name: str


class NamedToolChoice(RequestShape):
    type: str
    function: FunctionName | None = None


class JsonSchemaFormat(RequestShape):
    name: str
    json_schema: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponseFormat(RequestShape):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


ProgressFormat = Literal["event", "chunk"]


class StreamOptions(RequestShape):
    include_usage: bool | None = None
    # headend's own: tool progress frames in agent streams, off unless asked for
    include_tool_progress: bool | None = None
    tool_progress_format: ProgressFormat | None = None


class ChatCompletionRequest(RequestShape):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, ge=1, le=128)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = Field(None, max_length=4)
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    user: str | None = None
    tools: list[ChatTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    max_iterations: int | None = Field(None, ge=1, le=50)  # headend: tool-loop rounds
    session_id: str | None = Field(None, min_length=1, max_length=128)  # headend: continue one
    # llama.cpp sampling extras, as vLLM and llama.cpp's own server accept them.
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0, le=1)
    typical_p: float | None = Field(None, gt=0, le=1)
    repeat_penalty: float | None = Field(None, gt=0)
    mirostat: Literal[0, 1, 2] | None = None
    mirostat_tau: float | None = Field(None, gt=0)
    mirostat_eta: float | None = Field(None, gt=0)

    def sampling(self) -> dict[str, Any]:
        """Sampling fields the client set; ``max_completion_tokens`` wins over ``max_tokens``."""
        values = {key: getattr(self, key) for key in REQUEST_SAMPLING}
        values["max_tokens"] = self.max_completion_tokens or self.max_tokens
        return {key: value for key, value in values.items() if value is not None}

    def unknown_fields(self) -> list[str]:
        return sorted(self.model_extra or {})

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)
