"""Any OpenAI-compatible upstream: OpenAI, vLLM, llama.cpp's server, Ollama, LM Studio,
OpenRouter, another headend.

Requests pass through unchanged but for ``model`` (and, when streaming,
``stream_options.include_usage``, so tokens are always counted). Embeddings requests go to
the upstream's ``/embeddings`` the same way.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from headend.config import Settings
from headend.errors import UpstreamFailure
from headend.providers.base import ChatCall, Register
from headend.providers.http import (
    HttpProvider,
    HttpUpstreamConfig,
    parse_event,
    read_json,
    redact,
    sse_batches,
)
from headend.types import Batch, Json


class OpenAIConfig(HttpUpstreamConfig):
    base_url: str = "https://api.openai.com/v1"


class OpenAICompatProvider(HttpProvider):
    def __init__(self, name: str, config: OpenAIConfig) -> None:
        auth = {"authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        base_url = config.base_url.rstrip("/")
        super().__init__(name, config, base_url + "/chat/completions", auth)
        self._embeddings_url = base_url + "/embeddings"

    def embeds(self) -> bool:
        return True

    async def embed(self, call: ChatCall) -> Json:
        async with self._post(
            call, call.upstream_body(self._default_model), self._embeddings_url
        ) as response:
            answer = await read_json(self.name, response, call.timer)
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
            raise UpstreamFailure(
                f"provider '{self.name}' answered embeddings without data", retryable=False
            )
        return answer

    async def complete(self, call: ChatCall) -> Json:
        body = call.upstream_body(self._default_model)
        body.pop("stream", None)
        body.pop("stream_options", None)
        async with self._post(call, body) as response:
            answer = await read_json(self.name, response, call.timer)
        if not isinstance(answer, dict) or "choices" not in answer:
            raise UpstreamFailure(
                f"provider '{self.name}' answered without choices", retryable=False
            )
        return answer

    async def stream(self, call: ChatCall) -> AsyncGenerator[Batch, None]:
        body = call.upstream_body(self._default_model)
        body["stream"] = True
        options: Any = body.get("stream_options")
        body["stream_options"] = {
            **(options if isinstance(options, dict) else {}),
            "include_usage": True,
        }
        async with self._post(call, body) as response:
            async for events in sse_batches(response):
                batch: Batch = []
                done = False
                for _event, data in events:
                    if data == b"[DONE]":
                        done = True
                        break
                    batch.append(self._chunk(data))
                if batch:
                    yield batch
                if done:
                    return
        raise UpstreamFailure(
            f"provider '{self.name}' ended its stream before [DONE]", retryable=True
        )

    def _chunk(self, data: bytes) -> Json:
        chunk = parse_event(self.name, data)
        if not isinstance(chunk, dict):
            raise UpstreamFailure(
                f"provider '{self.name}' sent a stream event that is not an object",
                retryable=True,
            )
        if "error" in chunk and "choices" not in chunk:
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise UpstreamFailure(
                f"provider '{self.name}' reported an error in its stream: "
                + redact(str(message), self._secrets),
                retryable=True,
            )
        return chunk


def _build(name: str, config: OpenAIConfig, settings: Settings) -> OpenAICompatProvider:
    return OpenAICompatProvider(name, config)


def register(register: Register) -> None:
    register("openai", OpenAIConfig, _build)
