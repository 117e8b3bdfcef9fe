"""Anthropic's Messages API as a provider: OpenAI shapes in and out, translated both ways."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import aiohttp
from pydantic import Field

from headend.config import Settings
from headend.errors import InvalidRequest, ServiceUnavailable, UpstreamFailure
from headend.providers.anthropic_translate import StreamTranslator, from_anthropic, to_anthropic
from headend.providers.base import Batch, ChatCall, Json, Resources
from headend.providers.http import parse_event, post, read_json, sse_batches
from headend.providers.resilience import ResilientConfig

if TYPE_CHECKING:
    from headend.providers.registry import ProviderTypes

API_VERSION = "2023-06-01"


class AnthropicConfig(ResilientConfig):
    base_url: str = "https://api.anthropic.com"
    api_key: str | None = Field(None, repr=False)
    model: str | None = None  # used when a route names no model
    max_tokens: int = Field(4096, ge=1)  # Anthropic requires max_tokens; this when unset
    headers: dict[str, str] = Field(default_factory=dict, repr=False)


class AnthropicProvider:
    def __init__(self, name: str, config: AnthropicConfig) -> None:
        self.name = name
        self.resilience = config.resilience()
        self._config = config
        self._url = config.base_url.rstrip("/") + "/v1/messages"
        self._headers = {"anthropic-version": API_VERSION, **config.headers}
        if config.api_key:
            self._headers["x-api-key"] = config.api_key
        self._secrets = tuple(v for v in (config.api_key, *config.headers.values()) if v)
        self._http: aiohttp.ClientSession | None = None

    async def start(self, resources: Resources) -> None:
        self._http = resources.http

    async def close(self) -> None:
        self._http = None

    def _post(
        self, call: ChatCall, body: Json
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        if self._http is None:
            raise ServiceUnavailable(f"provider '{self.name}' is not started")
        headers = (
            {**self._headers, "x-request-id": call.request_id}
            if call.request_id
            else (self._headers)
        )
        return post(
            self._http,
            self.name,
            self._url,
            body,
            headers,
            self.resilience.timeout,
            call.timer,
            self._secrets,
        )

    def _request(self, call: ChatCall, stream: bool) -> Json:
        model = call.model or self._config.model
        if not model:
            raise InvalidRequest(
                f"Provider '{self.name}' needs a model: route to '{self.name}/<model>'.",
                param="model",
            )
        body = to_anthropic(call.body, model, self._config.max_tokens)
        if stream:
            body["stream"] = True
        return body

    async def complete(self, call: ChatCall) -> Json:
        body = self._request(call, stream=False)
        async with self._post(call, body) as response:
            message = await read_json(self.name, response, call.timer)
        if not isinstance(message, dict) or message.get("type") != "message":
            raise UpstreamFailure(
                f"provider '{self.name}' answered with something other than a message",
                retryable=False,
            )
        return from_anthropic(message, body["model"])

    async def stream(self, call: ChatCall) -> AsyncGenerator[Batch, None]:
        body = self._request(call, stream=True)
        translator = StreamTranslator(self.name, body["model"], self._secrets)
        async with self._post(call, body) as response:
            async for events in sse_batches(response):
                batch: Batch = []
                for _event, data in events:
                    event = parse_event(self.name, data)
                    if isinstance(event, dict):
                        batch += translator.feed(event)
                if batch:
                    yield batch
                if translator.done:
                    return
        raise UpstreamFailure(
            f"provider '{self.name}' ended its stream before message_stop", retryable=True
        )


def _build(name: str, config: AnthropicConfig, settings: Settings) -> AnthropicProvider:
    return AnthropicProvider(name, config)


def register(types: ProviderTypes) -> None:
    from headend.providers.registry import ProviderType

    types.register("anthropic", ProviderType(config_model=AnthropicConfig, build=_build))
