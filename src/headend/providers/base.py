"""What every provider takes and gives: the ``Provider`` protocol and its value types.

Providers speak OpenAI chat shapes on both sides, whatever their upstream speaks: a call
carries an OpenAI chat request (a dict, ``model`` set to the upstream's own name), and the
answer is a ``chat.completion`` dict or a stream of ``chat.completion.chunk`` dicts ending
with a usage chunk (``choices: []``). Streams come in batches: the chunks that arrived
together, which are relayed to the client in one write. Translation to another protocol
happens inside the provider. Providers raise only ``headend.errors.APIError`` subclasses.

A provider that can also embed text is an ``Embedder``: OpenAI's embeddings request in,
its ``list`` of ``embedding`` objects out.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from headend.observability.tracing import UNTRACED, Span
from headend.types import Batch, Json

if TYPE_CHECKING:
    from pydantic import BaseModel

    from headend.config import Settings
    from headend.observability.metrics import Metrics
    from headend.pricing import Spend
    from headend.providers.h1 import H1Client
    from headend.providers.resilience import Resilience

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


@dataclass(slots=True)
class Timer:
    """Time one request spent waiting on upstreams, so the rest is headend's own."""

    started: float = field(default_factory=time.perf_counter)
    upstream: float = 0.0

    def add_wait(self, since: float) -> None:
        self.upstream += time.perf_counter() - since

    def overhead_ms(self) -> float:
        return (time.perf_counter() - self.started - self.upstream) * 1000


@dataclass(slots=True)
class ChatCall:
    """One call to a provider: a chat request's body (or an embeddings request's)."""

    body: Json
    model: str | None = None  # the upstream's own model name; None: the provider's default
    timer: Timer = field(default_factory=Timer)
    request_id: str = ""
    span: Span = UNTRACED  # the span the call is made under (its trace context goes upstream)
    spend: Spend | None = None  # what the request's calls cost, added up (None: not counted)

    def upstream_body(self, default_model: str | None = None) -> Json:
        """The body with ``model`` set to the upstream's name, or left out when there is none."""
        body = dict(self.body)
        model = self.model or default_model
        if model is not None:
            body["model"] = model
        else:
            body.pop("model", None)
        return body


@dataclass(slots=True)
class Resources:
    """What the app shares with every provider; built in the lifespan."""

    http: H1Client  # the upstream HTTP client
    metrics: Metrics


class Provider(Protocol):
    """A source of chat completions, one instance per configured provider."""

    name: str
    resilience: Resilience
    context_window: int | None  # tokens; None when unknown (history is then not trimmed)
    genai_system: str  # its API in traces' ``gen_ai.provider.name``: openai, anthropic, llama.cpp
    remote: bool  # called over the network (a client span), or in this process

    async def start(self, resources: Resources) -> None:
        """Acquire resources (load weights, keep the HTTP session); called once at startup."""

    async def close(self) -> None:
        """Release everything ``start`` acquired."""

    def token_counter(self) -> Callable[[str], int] | None:
        """The model's own tokenizer as a text -> token count function, where there is one."""
        ...

    async def complete(self, call: ChatCall) -> Json:
        """A whole ``chat.completion``."""
        ...

    def stream(self, call: ChatCall) -> AsyncGenerator[Batch, None]:
        """Batches of ``chat.completion.chunk`` dicts as they arrive, the usage chunk last.

        A batch holds what is already there, never more: no batch waits to be filled.
        Closing the iterator early (client gone) must stop the upstream work at once.
        """
        ...


@runtime_checkable
class Embedder(Protocol):
    """A provider that embeds text, when ``embeds()`` says so (a configuration may turn
    it off or on)."""

    def embeds(self) -> bool: ...

    async def embed(self, call: ChatCall) -> Json:
        """OpenAI's ``list`` of ``embedding`` objects for an embeddings request's body,
        vectors encoded as its ``encoding_format`` asks."""
        ...


def chats(provider: Provider) -> bool:
    """Whether the provider answers chat requests: not a model loaded for embeddings only
    (such a provider says ``chats = False``)."""
    return getattr(provider, "chats", True) is not False


def embedder(provider: Provider) -> Embedder | None:
    """The provider as an embedder, or None when it does not embed."""
    if isinstance(provider, Embedder) and provider.embeds():
        return provider
    return None


# How a provider module registers its type: ``register(type_name, config_model, build)``,
# where ``build(name, config, settings)`` makes the provider. The registry hands it in
# (headend.providers.registry), so no provider module imports the registry.
Register = Callable[[str, type["BaseModel"], Callable[[str, Any, "Settings"], Provider]], None]
