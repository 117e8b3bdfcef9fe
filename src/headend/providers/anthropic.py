"""Anthropic's Messages API as a provider: OpenAI shapes in and out, translated both ways."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from pydantic import Field

from headend.config import Settings
from headend.errors import InvalidRequest, UpstreamFailure
from headend.providers.anthropic_translate import StreamTranslator, from_anthropic, to_anthropic
from headend.providers.base import ChatCall, Register
from headend.providers.http import (
    HttpProvider,
    HttpUpstreamConfig,
    parse_event,
    read_json,
    sse_batches,
)
from headend.types import Batch, Json

API_VERSION = "2023-06-01"


class AnthropicConfig(HttpUpstreamConfig):
    base_url: str = "https://api.anthropic.com"
    max_tokens: int = Field(4096, ge=1)  # Anthropic requires max_tokens; this when unset


class AnthropicProvider(HttpProvider):
    genai_system = "anthropic"

    def __init__(self, name: str, config: AnthropicConfig) -> None:
        headers = {"anthropic-version": API_VERSION}
        if config.api_key:
            headers["x-api-key"] = config.api_key
        super().__init__(name, config, config.base_url.rstrip("/") + "/v1/messages", headers)
        self._max_tokens = config.max_tokens

    def _request(self, call: ChatCall, stream: bool) -> Json:
        model = call.model or self._default_model
        if not model:
            raise InvalidRequest(
                f"Provider '{self.name}' needs a model: route to '{self.name}/<model>'.",
                param="model",
            )
        body = to_anthropic(call.body, model, self._max_tokens)
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


def register(register: Register) -> None:
    register("anthropic", AnthropicConfig, _build)
