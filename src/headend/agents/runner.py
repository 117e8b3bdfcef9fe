"""Runs a turn of an agent: its prompt and sampling, the client's messages, its model route."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from headend.agents.registry import Agent, AgentRegistry
from headend.agents.spec import AgentSpec
from headend.errors import ModelNotFound, ProviderError, ServiceUnavailable
from headend.providers.base import ModelCall, ModelEvent, Provider, SamplingParams

log = logging.getLogger(__name__)


def merge_sampling(agent: AgentSpec, requested: SamplingParams) -> SamplingParams:
    """The agent's defaults, overridden by the request except where the agent pins a field."""
    merged = agent.sampling().model_dump(exclude_none=True)
    for key, value in requested.model_dump(exclude_none=True).items():
        if key in agent.pinned:
            log.debug("agent %s pins %s; the request's value is ignored", agent.id, key)
            continue
        merged[key] = value
    return SamplingParams.model_construct(**merged)


def with_system_prompt(agent: AgentSpec, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not agent.system_prompt:
        return messages
    return [{"role": "system", "content": agent.system_prompt}, *messages]


class AgentRunner:
    def __init__(self, agents: AgentRegistry, providers: Mapping[str, Provider]) -> None:
        self.agents = agents
        self.providers = providers

    def agent(self, model: str) -> Agent:
        agent = self.agents.get(model)
        if agent is None:
            raise ModelNotFound(model)
        return agent

    async def stream(
        self, agent: Agent, messages: list[dict[str, Any]], requested: SamplingParams
    ) -> AsyncGenerator[ModelEvent, None]:
        """The model's events for one turn.

        The agent's routes are tried in order while nothing has been produced yet: once the
        first event is out, a failure is the caller's to report.
        """
        sampling = merge_sampling(agent.spec, requested)
        full = with_system_prompt(agent.spec, messages)
        last_error: ProviderError | ServiceUnavailable | None = None
        for target in agent.targets:
            provider = self.providers[target.provider]
            events = provider.stream(
                ModelCall(messages=full, sampling=sampling, model=target.model)
            )
            try:
                first = await anext(events)
            except (ProviderError, ServiceUnavailable) as exc:
                log.warning("agent %s: provider %s failed: %s", agent.id, target.provider, exc)
                last_error = exc
                continue
            except StopAsyncIteration:
                raise ProviderError(
                    f"provider '{target.provider}' ended without an answer"
                ) from None
            try:
                yield first
                async for event in events:
                    yield event
            finally:
                await events.aclose()
            return
        assert last_error is not None, "an agent always has at least one route"
        raise last_error
