"""``POST /v1/responses`` request shapes: every field the Responses surface reads, typed.

Input items and tools are unions chosen by their ``type``; a type headend does not know is
kept as ``Other`` (the surface refuses it or skips it by name), so a new item kind is a clear
400 and never a field read off the wrong shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, Tag

from headend.schemas.base import RequestShape, by_type


class ContentPart(RequestShape):
    """``input_text``, ``output_text``, ``input_image``, ``refusal``… by its ``type``."""

    type: str
    text: str | None = None
    image_url: str | None = None
    refusal: str | None = None


Content = str | list[ContentPart]


class MessageItem(RequestShape):
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: Content


class FunctionCallItem(RequestShape):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str
    namespace: str | None = None


class CustomToolCallItem(RequestShape):
    type: Literal["custom_tool_call"]
    call_id: str
    name: str
    input: str
    namespace: str | None = None


class CallOutputItem(RequestShape):
    type: Literal["function_call_output", "custom_tool_call_output"]
    call_id: str
    output: Content


class ItemReference(RequestShape):
    type: Literal["item_reference"]
    id: str


class OtherItem(RequestShape):
    """Reasoning, settings changes, and kinds the surface refuses by name."""

    type: str


class FunctionTool(RequestShape):
    type: Literal["function"]
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class CustomTool(RequestShape):
    type: Literal["custom"]
    name: str = Field(min_length=1)
    description: str | None = None
    format: dict[str, Any] | None = None


MemberTool = Annotated[
    Annotated[FunctionTool, Tag("FunctionTool")] | Annotated[CustomTool, Tag("CustomTool")],
    by_type({"function": "FunctionTool", "custom": "CustomTool"}),
]


class NamespaceTool(RequestShape):
    """A group of tools under one name (Codex CLI's MCP servers and sub-agents)."""

    type: Literal["namespace"]
    name: str = Field(min_length=1)
    description: str | None = None
    tools: list[MemberTool]


class HostedTool(RequestShape):
    """``web_search``, ``file_search``…: tools OpenAI runs, which headend leaves out."""

    type: str


_TOOL_TAGS = {"function": "FunctionTool", "custom": "CustomTool", "namespace": "NamespaceTool"}
Tool = Annotated[
    Annotated[FunctionTool, Tag("FunctionTool")]
    | Annotated[CustomTool, Tag("CustomTool")]
    | Annotated[NamespaceTool, Tag("NamespaceTool")]
    | Annotated[HostedTool, Tag("Other")],
    by_type(_TOOL_TAGS),
]


class AdditionalToolsItem(RequestShape):
    """Where Codex CLI's "responses-lite" requests put their tools."""

    type: Literal["additional_tools"]
    tools: list[Tool]


_ITEM_TAGS = {
    "message": "MessageItem",
    "function_call": "FunctionCallItem",
    "custom_tool_call": "CustomToolCallItem",
    "function_call_output": "CallOutputItem",
    "custom_tool_call_output": "CallOutputItem",
    "item_reference": "ItemReference",
    "additional_tools": "AdditionalToolsItem",
}
Item = Annotated[
    Annotated[MessageItem, Tag("MessageItem")]
    | Annotated[FunctionCallItem, Tag("FunctionCallItem")]
    | Annotated[CustomToolCallItem, Tag("CustomToolCallItem")]
    | Annotated[CallOutputItem, Tag("CallOutputItem")]
    | Annotated[ItemReference, Tag("ItemReference")]
    | Annotated[AdditionalToolsItem, Tag("AdditionalToolsItem")]
    | Annotated[OtherItem, Tag("Other")],
    by_type(_ITEM_TAGS, default="message"),
]


class ToolChoiceObject(RequestShape):
    """A named function or custom tool, ``allowed_tools``, or a hosted tool's type."""

    type: str
    name: str | None = None
    namespace: str | None = None
    mode: str | None = None


class TextFormat(RequestShape):
    type: str
    name: str | None = None
    json_schema: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class TextConfig(RequestShape):
    format: TextFormat | None = None
    verbosity: str | None = None


class Reasoning(RequestShape):
    effort: str | None = None
    summary: str | None = None


class ResponseRequest(RequestShape):
    model: str = Field(min_length=1)
    input: str | list[Item]
    instructions: str | list[dict[str, Any]] | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["auto", "none", "required"] | ToolChoiceObject | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    previous_response_id: str | None = None
    store: bool | None = None
    stream: bool | None = None
    background: bool | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    max_tool_calls: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    top_logprobs: int | None = Field(None, ge=0, le=20)
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    metadata: dict[str, str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    reasoning: Reasoning | None = None
    include: list[str] | None = None
    service_tier: str | None = None
