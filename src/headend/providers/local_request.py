"""How an OpenAI chat request becomes a call to the embedded model.

The embedded model takes text messages (with past tool calls and results), sampling fields,
``tools`` with ``tool_choice`` and ``parallel_tool_calls``, ``response_format``, ``logprobs``
with ``top_logprobs``, and ``logit_bias``. Anything else a request may carry that would
change the answer is refused with a 400 naming the field, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from headend.errors import InvalidRequest, UnsupportedValue
from headend.providers.base import SamplingParams
from headend.providers.llama_tool_formats import ToolSpec
from headend.schemas.openai.chat_api import (
    ChatCompletionRequest,
    ChatMessage,
    ChatTool,
    NamedToolChoice,
    ResponseFormat,
    ToolCall,
)
from headend.schemas.validation import validate
from headend.types import Json

NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}
LOGIT_BIAS_LIMIT = 100.0


@dataclass(frozen=True, slots=True)
class ToolChoice:
    mode: str  # "auto", "none" or "required"
    name: str | None = None  # the one tool that must be called

    @property
    def forced(self) -> bool:
        return self.mode == "required"


@dataclass(slots=True)
class LocalCall:
    messages: list[dict[str, Any]]
    sampling: SamplingParams
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: ToolChoice = ToolChoice("auto")
    parallel_tool_calls: bool = True
    answer_schema: Any = None  # response_format's JSON schema; None: free text
    logprobs: int | None = None  # top alternatives per token; None: no logprobs
    logit_bias: dict[int, float] = field(default_factory=dict)

    @property
    def offered(self) -> list[ToolSpec]:
        """The tools the model is told about: none with ``tool_choice: none``, only the named
        one when one is named."""
        if self.tool_choice.mode == "none":
            return []
        if self.tool_choice.name is not None:
            return [t for t in self.tools if t.name == self.tool_choice.name]
        return self.tools


def _text(message: ChatMessage, index: int) -> str:
    content = message.content
    if not isinstance(content, list):
        return content or ""
    texts = []
    for part_index, part in enumerate(content):
        if part.type != "text" or part.text is None:
            raise UnsupportedValue(
                f"Content parts of type '{part.type}' are not supported by this "
                "model; send text parts.",
                param=f"messages[{index}].content[{part_index}].type",
            )
        texts.append(part.text)
    return "\n".join(texts)


def plain_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Messages as the chat template sees them: text content, ``developer`` as ``system``,
    tool calls and the ids tool results answer kept."""
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if message.role == "function":
            raise UnsupportedValue(
                "The deprecated 'function' role is not supported; use 'tool' messages.",
                param=f"messages[{index}].role",
            )
        role = "system" if message.role == "developer" else message.role
        entry: dict[str, Any] = {"role": role, "content": _text(message, index)}
        if message.role == "assistant" and message.tool_calls:
            entry["tool_calls"] = [_past_call(call) for call in message.tool_calls]
        if message.role == "tool":
            entry["tool_call_id"] = message.tool_call_id or ""
        out.append(entry)
    return out


def _past_call(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.function.name, "arguments": call.function.arguments},
    }


def _tools(raw: list[ChatTool] | None) -> list[ToolSpec]:
    tools = []
    for index, tool in enumerate(raw or []):
        if tool.type != "function" or tool.function is None:
            raise UnsupportedValue(
                "Only tools of type 'function' are supported.", param=f"tools[{index}].type"
            )
        function = tool.function
        parameters = function.parameters or NO_PARAMETERS
        tools.append(ToolSpec(function.name, function.description or "", parameters))
    return tools


def _tool_choice(choice: str | NamedToolChoice | None, tools: list[ToolSpec]) -> ToolChoice:
    if choice is None:
        return ToolChoice("auto")
    if isinstance(choice, str):
        if choice == "required" and not tools:
            raise InvalidRequest(
                "'tool_choice' requires a tool but none is offered.", param="tools"
            )
        return ToolChoice(choice)
    if choice.type != "function" or choice.function is None:
        raise InvalidRequest(
            'A named \'tool_choice\' is {"type": "function", "function": {"name": ...}}.',
            param="tool_choice",
        )
    name = choice.function.name
    if name not in {tool.name for tool in tools}:
        raise InvalidRequest(
            f"'tool_choice' names {name!r}, which is not in 'tools'.",
            param="tool_choice.function.name",
        )
    return ToolChoice("required", name)


def _answer_schema(response_format: ResponseFormat | None) -> Any:
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return {"type": "object"}
    spec = response_format.json_schema
    if spec is None or spec.json_schema is None:
        raise InvalidRequest(
            "A 'json_schema' response format needs 'json_schema.schema', a JSON schema.",
            param="response_format.json_schema.schema",
        )
    return spec.json_schema


def _logit_bias(raw: dict[str, float] | None) -> dict[int, float]:
    bias = {}
    for key, value in (raw or {}).items():
        if not key.isdigit():
            raise InvalidRequest(
                f"logit_bias keys are token ids; {key!r} is not one.", param="logit_bias"
            )
        if not -LOGIT_BIAS_LIMIT <= value <= LOGIT_BIAS_LIMIT:
            raise InvalidRequest(
                f"logit_bias values lie between -100 and 100; {key} has {value}.",
                param="logit_bias",
            )
        bias[int(key)] = float(value)
    return bias


def _logprobs(request: ChatCompletionRequest) -> int | None:
    if request.top_logprobs is not None and not request.logprobs:
        raise InvalidRequest("'top_logprobs' needs 'logprobs': true.", param="top_logprobs")
    return (request.top_logprobs or 0) if request.logprobs else None


def local_call(body: Json) -> LocalCall:
    request = validate(ChatCompletionRequest, {"model": "local", **body})
    if request.n is not None and request.n > 1:
        raise UnsupportedValue("Only n=1 is supported by this model.", param="n")
    tools = _tools(request.tools)
    return LocalCall(
        messages=plain_messages(request.messages),
        sampling=SamplingParams.model_construct(**request.sampling()),
        tools=tools,
        tool_choice=_tool_choice(request.tool_choice, tools),
        parallel_tool_calls=request.parallel_tool_calls is not False,
        answer_schema=_answer_schema(request.response_format),
        logprobs=_logprobs(request),
        logit_bias=_logit_bias(request.logit_bias),
    )
