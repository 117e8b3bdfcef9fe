"""Any OpenAI-compatible upstream: OpenAI, vLLM, llama.cpp's server, Ollama, LM Studio,
OpenRouter, another headend.

Requests pass through unchanged but for ``model`` (and, when streaming,
``stream_options.include_usage``, so tokens are always counted).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import aiohttp
from pydantic import Field

from headend.config import Settings
from headend.errors import ServiceUnavailable, UpstreamFailure
from headend.providers.base import Batch, ChatCall, Json, Resources
from headend.providers.http import parse_event, post, read_json, redact, sse_batches
from headend.providers.resilience import ResilientConfig

if TYPE_CHECKING:
    from headend.providers.registry import ProviderTypes


class OpenAIConfig(ResilientConfig):
    base_url: str = "https://api.openai.com/v1"
    api_key: str | None = Field(None, repr=False)
    model: str | None = None  # used when a route names no model
    headers: dict[str, str] = Field(default_factory=dict, repr=False)


class OpenAICompatProvider:
    def __init__(self, name: str, config: OpenAIConfig) -> None:
        self.name = name
        self.resilience = config.resilience()
        self._url = config.base_url.rstrip("/") + "/chat/completions"
        self._headers = dict(config.headers)
        if config.api_key:
            self._headers["authorization"] = f"Bearer {config.api_key}"
        self._default_model = config.model
        self._secrets = tuple(v for v in (config.api_key, *config.headers.values()) if v)
        self._http: aiohttp.ClientSession | None = None

    async def start(self, resources: Resources) -> None:
        self._http = resources.http

    async def close(self) -> None:
        self._http = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise ServiceUnavailable(f"provider '{self.name}' is not started")
        return self._http

    def _post(
        self, call: ChatCall, body: Json
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        headers = (
            {**self._headers, "x-request-id": call.request_id}
            if call.request_id
            else (self._headers)
        )
        return post(
            self._session(),
            self.name,
            self._url,
            body,
            headers,
            self.resilience.timeout,
            call.timer,
            self._secrets,
        )

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


def register(types: ProviderTypes) -> None:
    from headend.providers.registry import ProviderType

    types.register("openai", ProviderType(config_model=OpenAIConfig, build=_build))
