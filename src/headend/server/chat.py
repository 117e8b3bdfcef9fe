"""Serving chat completions: OpenAI chat requests in, agent runs out, OpenAI shapes back."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import orjson

from headend import __version__
from headend.agents.registry import Agent
from headend.agents.runner import AgentRunner
from headend.errors import APIError, ProviderError, UnsupportedValue
from headend.providers.base import Finish, ModelEvent, SamplingParams, TextDelta
from headend.schemas.openai.chat import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ChunkChoice,
    Delta,
    Usage,
)
from headend.server.sse import data_frame

log = logging.getLogger(__name__)

SYSTEM_FINGERPRINT = f"fp_headend_{__version__}"
DONE_FRAME = b"data: [DONE]\n\n"
_REQUEST_SAMPLING = frozenset(SamplingParams.model_fields) - {"max_tokens"}


@dataclass(slots=True)
class Turn:
    """A validated request, ready to run."""

    id: str
    created: int
    model: str
    agent: Agent
    messages: list[dict[str, Any]]
    sampling: SamplingParams
    include_usage: bool


def plain_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """OpenAI messages as the model sees them: text content, ``developer`` as ``system``."""
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if message.role == "function":
            raise UnsupportedValue(
                "The deprecated 'function' role is not supported; use 'tool' messages.",
                param=f"messages[{index}].role",
            )
        content = message.content
        if isinstance(content, list):
            texts = []
            for part_index, part in enumerate(content):
                if part.type != "text" or part.text is None:
                    raise UnsupportedValue(
                        f"Content parts of type '{part.type}' are not supported by this "
                        "model; send text parts.",
                        param=f"messages[{index}].content[{part_index}].type",
                    )
                texts.append(part.text)
            content = "\n".join(texts)
        role = "system" if message.role == "developer" else message.role
        out.append({"role": role, "content": content or ""})
    return out


def requested_sampling(request: ChatCompletionRequest) -> SamplingParams:
    fields = {key: getattr(request, key) for key in _REQUEST_SAMPLING}
    fields["max_tokens"] = request.max_completion_tokens or request.max_tokens
    return SamplingParams.model_construct(**{k: v for k, v in fields.items() if v is not None})


def refuse_unsupported(request: ChatCompletionRequest) -> None:
    """Valid OpenAI values that headend cannot honour yet are a 400, never silently dropped."""
    if request.n is not None and request.n > 1:
        raise UnsupportedValue("Only n=1 is supported.", param="n")
    if request.logprobs:
        raise UnsupportedValue("logprobs are not supported by this model.", param="logprobs")
    if request.logit_bias:
        raise UnsupportedValue("logit_bias is not supported by this model.", param="logit_bias")
    if request.tools and request.tool_choice != "none":
        raise UnsupportedValue("This agent does not accept client tools.", param="tools")
    if request.response_format and request.response_format.get("type", "text") != "text":
        raise UnsupportedValue(
            "Only response_format type 'text' is supported by this model.",
            param="response_format.type",
        )


class ChatService:
    def __init__(self, runner: AgentRunner) -> None:
        self.runner = runner

    def prepare(self, request: ChatCompletionRequest) -> Turn:
        agent = self.runner.agent(request.model)
        if request.unknown_fields():
            log.debug("ignoring unknown chat fields: %s", ", ".join(request.unknown_fields()))
        refuse_unsupported(request)
        return Turn(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=request.model,
            agent=agent,
            messages=plain_messages(request.messages),
            sampling=requested_sampling(request),
            include_usage=request.include_usage(),
        )

    def _events(self, turn: Turn) -> AsyncGenerator[ModelEvent, None]:
        return self.runner.stream(turn.agent, turn.messages, turn.sampling)

    async def complete(self, turn: Turn) -> ChatCompletion:
        texts: list[str] = []
        finish: Finish | None = None
        events = self._events(turn)
        try:
            async for event in events:
                if isinstance(event, TextDelta):
                    texts.append(event.text)
                else:
                    finish = event
        finally:
            await events.aclose()
        if finish is None:
            raise ProviderError("the model stopped without finishing its answer")
        return ChatCompletion(
            id=turn.id,
            created=turn.created,
            model=turn.model,
            system_fingerprint=SYSTEM_FINGERPRINT,
            choices=[
                Choice(
                    message=AssistantMessage(content="".join(texts)),
                    finish_reason=finish.reason,
                )
            ],
            usage=_usage(finish),
        )

    async def stream(self, turn: Turn) -> AsyncGenerator[bytes, None]:
        """SSE frames: a role chunk with the first token, content deltas, the finish, usage."""
        started = False
        content_frame = ContentFrames(self._chunk(turn, Delta(content="")))
        events = self._events(turn)
        try:
            async for event in events:
                if isinstance(event, TextDelta):
                    frame = content_frame(event.text)
                    if not started:
                        frame = (
                            self._chunk(turn, Delta(role="assistant", content="", refusal=None))
                            + frame
                        )
                        started = True
                    yield frame
                    continue
                head = (
                    b""
                    if started
                    else self._chunk(turn, Delta(role="assistant", content="", refusal=None))
                )
                yield (
                    head
                    + self._chunk(turn, Delta(), finish_reason=event.reason)
                    + self._usage_frame(turn, event)
                    + DONE_FRAME
                )
                return
        finally:
            await events.aclose()
        raise ProviderError("the model stopped without finishing its answer")

    def _chunk(self, turn: Turn, delta: Delta, finish_reason: Any = None) -> bytes:
        # OpenAI sends "usage": null on every chunk but the last when usage was asked for.
        usage: dict[str, Any] = {"usage": None} if turn.include_usage else {}
        chunk = ChatCompletionChunk(
            id=turn.id,
            created=turn.created,
            model=turn.model,
            system_fingerprint=SYSTEM_FINGERPRINT,
            choices=[ChunkChoice(delta=delta, finish_reason=finish_reason)],
            **usage,
        )
        return data_frame(chunk.model_dump_json().encode())

    def _usage_frame(self, turn: Turn, finish: Finish) -> bytes:
        if not turn.include_usage:
            return b""
        chunk = ChatCompletionChunk(
            id=turn.id,
            created=turn.created,
            model=turn.model,
            system_fingerprint=SYSTEM_FINGERPRINT,
            choices=[],
            usage=_usage(finish),
        )
        return data_frame(chunk.model_dump_json().encode())


class ContentFrames:
    """Content-delta frames for one stream, built by splicing the text into a template.

    A content chunk differs from the next only in its text, and it is built once per token:
    serializing a model per token would cost the model thread CPU it needs.
    """

    _HOLE = b'"delta":{"content":""}'

    def __init__(self, template: bytes) -> None:
        head, hole, tail = template.partition(self._HOLE)
        assert hole, "the template must carry an empty content delta"
        self._head = head + b'"delta":{"content":'
        self._tail = b"}" + tail

    def __call__(self, text: str) -> bytes:
        return self._head + orjson.dumps(text) + self._tail


def _usage(finish: Finish) -> Usage:
    return Usage(
        prompt_tokens=finish.usage.prompt_tokens,
        completion_tokens=finish.usage.completion_tokens,
        total_tokens=finish.usage.total_tokens,
    )


def error_frames(error: APIError) -> bytes:
    return data_frame(orjson.dumps(error.envelope())) + DONE_FRAME
