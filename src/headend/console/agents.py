"""``GET /console/api/agents``: what the console's Agents page shows, for the agents and
model routes the key may use: each agent's version, routes, tools (and whether this key's runs may
use them), sampling defaults and limits, its description, and its system prompt for keys
with ``agents:write`` or ``admin`` (an operator's prompt is not every caller's to read), and
its name as a tool of ``/mcp``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from headend.access.principal import Principal
from headend.agents.registry import Agent
from headend.guardrails.rules import GuardrailSpec, ToolCallsCheck
from headend.providers.base import SAMPLING_FIELDS
from headend.server.auth import principal_of
from headend.server.json_bodies import json_response
from headend.server.mcp_agents import tool_name
from headend.server.services import services


def _agent(agent: Agent, principal: Principal) -> dict[str, Any]:
    spec = agent.spec
    tools = [
        {
            "name": tool.ref,
            "description": tool.description,
            "read_only": tool.read_only,
            "allowed": principal.tools.allows(tool),
        }
        for tool in agent.tools
    ]
    tools += [
        {
            "name": f"mcp:{ref.server}" + (f"/{ref.tool}" if ref.tool else ""),
            "description": "an MCP server's tools (listed when the agent runs)",
            "read_only": None,
            "allowed": None,
        }
        for ref in agent.mcp
    ]
    sampling = spec.model_dump(include=set(SAMPLING_FIELDS), exclude_none=True)
    return {
        "id": spec.id,
        "object": "agent",
        "version": agent.version or None,
        "description": spec.description,
        "routes": spec.routes(),
        "targets": [str(target) for target in agent.targets],
        "tools": tools,
        "sampling": sampling,
        "pinned": spec.pinned,
        "max_iterations": spec.max_iterations,
        "max_concurrency": spec.max_concurrency,
        "system_prompt": spec.system_prompt if principal.has("agents:write") else None,
        "mcp_tool": tool_name(spec.id),  # its name among /mcp's tools
        "guardrails": [guardrail_text(g) for g in spec.guardrails],
    }


def guardrail_text(check: GuardrailSpec) -> str:
    """One check in a line: ``pii: mask on input, output``."""
    if isinstance(check, ToolCallsCheck):
        limits = ", ".join(f"{name} {most}" for name, most in check.max.items())
        return f"tool_calls: at most {limits} per conversation"
    return f"{check.check}: {check.action} on {', '.join(check.apply_to)}"


async def list_agents(request: Request) -> Response:
    found = services(request)
    principal = principal_of(request.scope)
    agents = [_agent(a, principal) for a in found.agents if principal.may_use(a.id)]
    routes = [
        {"id": name, "object": "model_route", "targets": [str(t) for t in targets]}
        for name in found.routes.names()
        if principal.may_use(name) and (targets := found.routes.for_client(name)) is not None
    ]
    every = [guardrail_text(g) for g in found.settings.guardrails]
    body = {"object": "list", "data": agents, "routes": routes, "guardrails": every}
    return json_response(body)
