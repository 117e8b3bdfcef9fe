"""``POST /v1/messages`` request shapes: every field the Messages surface reads, typed.

Content blocks are a union chosen by ``type``; blocks headend passes over (``thinking``,
``document``…) or refuses by name are kept as ``Other``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, Tag

from headend.schemas.base import RequestShape, by_type


class TextBlock(RequestShape):
    type: Literal["text"]
    text: str


class ImageSource(RequestShape):
    type: str
    media_type: str | None = None
    data: str | None = None
    url: str | None = None


class ImageBlock(RequestShape):
    type: Literal["image"]
    source: ImageSource


class ToolUseBlock(RequestShape):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class ResultBlock(RequestShape):
    """A block inside a tool result: text, an image, Claude Code's ``tool_reference``…"""

    type: str
    text: str | None = None
    tool_name: str | None = None


class ToolResultBlock(RequestShape):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[ResultBlock] | None = None
    is_error: bool | None = None


class OtherBlock(RequestShape):
    type: str


Block = Annotated[
    Annotated[TextBlock, Tag("TextBlock")]
    | Annotated[ImageBlock, Tag("ImageBlock")]
    | Annotated[ToolUseBlock, Tag("ToolUseBlock")]
    | Annotated[ToolResultBlock, Tag("ToolResultBlock")]
    | Annotated[OtherBlock, Tag("Other")],
    by_type(
        {
            "text": "TextBlock",
            "image": "ImageBlock",
            "tool_use": "ToolUseBlock",
            "tool_result": "ToolResultBlock",
        }
    ),
]


class MessageParam(RequestShape):
    role: str  # the surface names the roles it takes, in Anthropic's words
    content: str | list[Block]


class SystemBlock(RequestShape):
    type: str = "text"
    text: str


class Tool(RequestShape):
    """A client tool (``name``, ``input_schema``) or a server tool (``type``, ``name``)."""

    name: str = Field(min_length=1)
    type: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None


class ToolChoice(RequestShape):
    type: str
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class Metadata(RequestShape):
    user_id: str | None = None


class MessagesRequest(RequestShape):
    model: str = Field(min_length=1)
    messages: list[MessageParam] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)  # required, but not by count_tokens
    system: str | list[SystemBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    stop_sequences: list[str] | None = None
    metadata: Metadata | None = None
    stream: bool | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
    thinking: dict[str, Any] | None = None
    session_id: str | None = Field(None, min_length=1, max_length=128)  # headend's own
