"""One turn of an agent as an upstream request: its prompt and sampling, the client's messages."""

from __future__ import annotations

import logging
from typing import Any

from headend.agents.spec import AgentSpec
from headend.errors import UnsupportedValue
from headend.providers.base import Json
from headend.schemas.openai.chat import ChatCompletionRequest

log = logging.getLogger(__name__)

# Request fields an agent passes on to its model besides messages and sampling.
FORWARDED = (
    "response_format",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "user",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
)


def merge_sampling(agent: AgentSpec, requested: dict[str, Any]) -> dict[str, Any]:
    """The agent's defaults, overridden by the request except where the agent pins a field."""
    merged = agent.sampling().model_dump(exclude_none=True)
    for key, value in requested.items():
        if key in agent.pinned:
            log.debug("agent %s pins %s; the request's value is ignored", agent.id, key)
            continue
        merged[key] = value
    return merged


def with_system_prompt(agent: AgentSpec, messages: list[Json]) -> list[Json]:
    if not agent.system_prompt:
        return messages
    return [{"role": "system", "content": agent.system_prompt}, *messages]


def agent_body(agent: AgentSpec, request: ChatCompletionRequest) -> Json:
    """The OpenAI chat request an agent sends its model for this client request."""
    if request.n is not None and request.n > 1:
        raise UnsupportedValue("An agent gives one answer: only n=1 is supported.", param="n")
    sent = request.model_dump(exclude_unset=True)
    body: Json = {"messages": with_system_prompt(agent, sent["messages"])}
    sampling = merge_sampling(agent, request.sampling())
    if "max_tokens" in sampling and request.max_completion_tokens is not None:
        # Newer OpenAI models take only the new name; keep the one the client used.
        sampling["max_completion_tokens"] = sampling.pop("max_tokens")
    body.update(sampling)
    body.update({key: sent[key] for key in FORWARDED if key in sent})
    return body
