"""Agent versions: what a request's ``model`` runs, and what records them.

Every agent has an integer version. A file-defined agent's definition (its file's text) is
recorded in the store when the server starts, and gets a new version when it differs from
the latest one recorded, so the history survives restarts and is the same on every instance
sharing the store. ``support`` runs the version served now; ``support@3`` runs version 3,
rebuilt from its recorded text against today's routes and tools (and kept built).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import replace

from headend.agents.registry import Agent, AgentRegistry, agent_targets, with_tools
from headend.agents.spec import parse_agent_text
from headend.errors import ConfigError, InvalidRequest
from headend.providers.routes import RouteTable
from headend.store.base import Store
from headend.tools.registry import ToolRegistry

FILE = "file"  # the origin of a version read from the agents directory
BUILT_KEPT = 64  # earlier versions kept built, the most recently used


def split_version(name: str) -> tuple[str, int] | None:
    """``("support", 3)`` for ``support@3``; None for a name without a version."""
    agent_id, at, number = name.rpartition("@")
    if not at or not agent_id or not number.isdigit() or number.startswith("0"):
        return None
    return agent_id, int(number)


class AgentVersions:
    def __init__(
        self, agents: AgentRegistry, store: Store, routes: RouteTable, tools: ToolRegistry
    ) -> None:
        self.agents = agents
        self.store = store
        self.routes = routes
        self.tools = tools
        self._built: OrderedDict[tuple[str, int], Agent] = OrderedDict()

    async def record(self) -> None:
        """Record each agent's definition; each is served at the version it got."""
        for agent in list(self.agents):
            found = await self.store.record_agent_version(
                agent.id, agent.content, FILE, None, time.time()
            )
            self.agents.agents[agent.id] = replace(agent, version=found.version)

    async def resolve(self, name: str) -> Agent | None:
        """The agent ``name`` runs: the current one, or an earlier version; None when it
        names no agent (or a version it never had)."""
        agent = self.agents.get(name)
        if agent is not None:
            return agent
        asked = split_version(name)
        if asked is None:
            return None
        agent_id, number = asked
        current = self.agents.get(agent_id)
        if current is None:
            return None
        if number == current.version:
            return current
        built = self._built.get(asked)
        if built is None:
            built = await self._build(current, number)
            if built is None:
                return None
            self._built[asked] = built
            while len(self._built) > BUILT_KEPT:
                self._built.popitem(last=False)
        self._built.move_to_end(asked)
        return built

    async def _build(self, current: Agent, number: int) -> Agent | None:
        record = await self.store.agent_version(current.id, number)
        if record is None:
            return None
        source = f"{current.id}@{number}"
        try:
            spec = parse_agent_text(current.id, record.content, source, self.tools)
            agent = Agent(spec=spec, targets=agent_targets(spec, self.routes))
            descriptions = {a.id: a.spec.description for a in self.agents}
            agent = with_tools(agent, self.tools, descriptions)
        except ConfigError as exc:
            raise InvalidRequest(
                f"Version {number} of agent '{current.id}' cannot run with this server's "
                f"configuration: {'; '.join(exc.problems)}",
                param="model",
                code="model_version_unavailable",
            ) from None
        return replace(agent, content=record.content, version=number)
