"""One turn of an agent as an upstream request: its prompt and sampling, the client's messages."""

from __future__ import annotations

import logging
from typing import Any

from headend.agents.registry import Agent
from headend.agents.spec import AgentSpec
from headend.errors import InvalidRequest, UnsupportedValue
from headend.schemas.openai.chat_api import ChatCompletionRequest
from headend.types import Json

log = logging.getLogger(__name__)

DEFAULT_MAX_ITERATIONS = 25

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


def agent_body(agent: Agent, request: ChatCompletionRequest) -> Json:
    """The OpenAI chat request an agent sends its model for this client request."""
    if request.n is not None and request.n > 1:
        raise UnsupportedValue("An agent gives one answer: only n=1 is supported.", param="n")
    reserved = {tool.name for tool in agent.tools}
    for index, tool in enumerate(request.tools or []):
        if tool.function is not None and tool.function.name in reserved:
            raise InvalidRequest(
                f"The tool name {tool.function.name!r} belongs to the agent's own tools.",
                param=f"tools[{index}].function.name",
            )
    sent = request.model_dump(exclude_unset=True, by_alias=True)
    body: Json = {"messages": with_system_prompt(agent.spec, sent["messages"])}
    sampling = merge_sampling(agent.spec, request.sampling())
    if "max_tokens" in sampling and request.max_completion_tokens is not None:
        # Newer OpenAI models take only the new name; keep the one the client used.
        sampling["max_completion_tokens"] = sampling.pop("max_tokens")
    body.update(sampling)
    body.update({key: sent[key] for key in FORWARDED if key in sent})
    spec = agent.spec
    if spec.response_format is not None:
        if sent.get("response_format") not in (None, spec.response_format):
            raise InvalidRequest(
                f"The agent {spec.id!r} sets the answer's response_format itself; "
                "leave response_format out.",
                param="response_format",
            )
        body["response_format"] = spec.response_format
    return body


def max_iterations(agent: AgentSpec, requested: int | None) -> int:
    """The request's rounds of tool calls (default 25), never above the agent's own cap."""
    return min(requested or DEFAULT_MAX_ITERATIONS, agent.max_iterations)
