"""A scripted in-process provider for fast tests of the server's own behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from headend.errors import APIError
from headend.providers.base import ChatCall, Resources
from headend.providers.resilience import Resilience, Retry
from headend.schemas.openai.embeddings_api import EmbeddingRequest, embedding_list
from headend.schemas.validation import validate
from headend.types import Json


def chunk(delta: Json, finish: str | None = None) -> Json:
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "scripted",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


@dataclass
class ScriptedProvider:
    """Answers ``texts`` (after ``delay`` seconds), failing where told to."""

    name: str = "local"
    texts: list[str] = field(default_factory=lambda: ["Hello", " world"])
    delay: float = 0.0
    fail_before: APIError | None = None
    fail_after: APIError | None = None
    calls: list[ChatCall] = field(default_factory=list)
    resilience: Resilience = field(default_factory=lambda: Resilience(retry=Retry(attempts=1)))
    context_window: int | None = None
    genai_system: str = "openai"
    remote: bool = True

    async def start(self, resources: Resources) -> None:
        return None

    async def close(self) -> None:
        return None

    def token_counter(self) -> None:
        return None

    def _usage(self) -> Json:
        return {
            "prompt_tokens": 3,
            "completion_tokens": len(self.texts),
            "total_tokens": 3 + len(self.texts),
        }

    async def complete(self, call: ChatCall) -> Json:
        self.calls.append(call)
        await asyncio.sleep(self.delay)
        if self.fail_before is not None:
            raise self.fail_before
        message = {"role": "assistant", "content": "".join(self.texts), "refusal": None}
        return {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "created": 1,
            "model": "scripted",
            "usage": self._usage(),
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            ],
        }

    async def stream(self, call: ChatCall) -> AsyncGenerator[list[Json], None]:
        self.calls.append(call)
        await asyncio.sleep(self.delay)
        if self.fail_before is not None:
            raise self.fail_before
        yield [chunk({"role": "assistant", "content": ""})]
        for text in self.texts:
            yield [chunk({"content": text})]
        if self.fail_after is not None:
            raise self.fail_after
        yield [chunk({}, "stop"), {**chunk({}), "choices": [], "usage": self._usage()}]


@dataclass
class ScriptedEmbedder(ScriptedProvider):
    """Embeds every input as the same two-dimensional vector."""

    name: str = "embedder"

    def embeds(self) -> bool:
        return True

    async def embed(self, call: ChatCall) -> Json:
        self.calls.append(call)
        request = validate(EmbeddingRequest, call.body)
        vectors = [[1.0, 0.0] for _ in request.inputs()]
        return embedding_list(vectors, "scripted", 3, request.encoding_format)
