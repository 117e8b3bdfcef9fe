"""What every provider takes and gives: the ``Provider`` protocol and its value types.

A provider turns a ``ModelCall`` (messages plus sampling) into a stream of ``ModelEvent``s:
text deltas, then exactly one ``Finish``. Providers raise only ``headend.errors.APIError``
subclasses; transport errors are converted at their boundary.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


class SamplingParams(BaseModel):
    """Sampling fields an agent file may default and a request may override.

    Field names follow the OpenAI API, with llama.cpp's extras beside them.
    """

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0, le=1)
    typical_p: float | None = Field(None, gt=0, le=1)
    repeat_penalty: float | None = Field(None, gt=0)
    mirostat: Literal[0, 1, 2] | None = None
    mirostat_tau: float | None = Field(None, gt=0)
    mirostat_eta: float | None = Field(None, gt=0)

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


SAMPLING_FIELDS: frozenset[str] = frozenset(SamplingParams.model_fields)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Finish:
    reason: FinishReason
    usage: Usage


ModelEvent = TextDelta | Finish


@dataclass(slots=True)
class ModelCall:
    """One call to a model: OpenAI-shaped messages with plain-text content."""

    messages: list[dict[str, Any]]
    sampling: SamplingParams
    model: str | None = None  # the upstream's own model name, where the route names one
    options: dict[str, Any] = field(default_factory=dict)


class Provider(Protocol):
    """A source of model completions, one instance per configured provider."""

    name: str

    async def start(self) -> None:
        """Acquire resources (load weights, open connections); called once at startup."""

    async def close(self) -> None:
        """Release everything ``start`` acquired."""

    def stream(self, call: ModelCall) -> AsyncGenerator[ModelEvent, None]:
        """Yield text deltas as they are produced, then one ``Finish``.

        Closing the iterator early (client gone) must stop the work at once.
        """
        ...
