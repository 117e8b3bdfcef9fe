"""Agent versions: what a request's ``model`` runs, and what records them.

Every agent has an integer version. A file-defined agent's definition (its file's text) is
recorded in the store when the server starts, and gets a new version when it differs from
the latest one recorded, so the history survives restarts and is the same on every instance
sharing the store (an agent defined through the API gets its versions by publishing:
``headend.agents.editor``). ``support`` runs the version served now; ``support@3`` runs
version 3, rebuilt from its recorded text against today's routes and tools (and kept built);
``support@draft`` runs a stored agent's draft (for keys that may edit it: the caller checks).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import replace

from headend.agents.registry import API, FILE, Agent, AgentRegistry, build_agent
from headend.errors import ConfigError, InvalidRequest
from headend.observability import audit_log
from headend.providers.model_routes import RouteTable
from headend.store.base import Store
from headend.tools.registry import ToolRegistry

BUILT_KEPT = 64  # earlier versions kept built, the most recently used
DRAFT = "draft"  # support@draft: the draft of a stored agent


def split_version(name: str) -> tuple[str, int] | None:
    """``("support", 3)`` for ``support@3``; None for a name without a version."""
    agent_id, at, number = name.rpartition("@")
    if not at or not agent_id or not number.isdigit() or number.startswith("0"):
        return None
    return agent_id, int(number)


def draft_of(name: str) -> str | None:
    """``support`` for ``support@draft``; None for any other name."""
    agent_id, at, label = name.rpartition("@")
    return agent_id if at and agent_id and label == DRAFT else None


class AgentVersions:
    def __init__(
        self, agents: AgentRegistry, store: Store, routes: RouteTable, tools: ToolRegistry
    ) -> None:
        self.agents = agents
        self.store = store
        self.routes = routes
        self.tools = tools
        self._built: OrderedDict[tuple[str, int], Agent] = OrderedDict()
        self._drafts: dict[str, Agent] = {}  # the last draft of each agent run, built

    def build(self, agent_id: str, text: str, source: str) -> Agent:
        """An agent from a definition, against this server's routes, tools and agents
        (ConfigError: what ``headend check`` would say of it as a file)."""
        descriptions = {a.id: a.spec.description for a in self.agents}
        return build_agent(
            agent_id,
            text,
            source,
            routes=self.routes,
            tools=self.tools,
            descriptions=descriptions,
        )

    def forget_built(self) -> None:
        """Build earlier versions and drafts again when next run (the routes changed)."""
        self._built.clear()
        self._drafts.clear()

    async def record(self) -> None:
        """Record each file agent's definition; each is served at the version it got."""
        for agent in list(self.agents):
            if agent.origin != FILE:
                continue
            version = await self.record_file(agent.id, agent.content)
            self.agents.agents[agent.id] = replace(agent, version=version)

    async def record_file(self, agent_id: str, content: str) -> int:
        """The version a file agent's content is (a new one, audited, when the content is)."""
        at = time.time()
        found = await self.store.record_agent_version(agent_id, content, FILE, None, at)
        # Minted by this call, not by another instance or an earlier start with this content.
        if found.origin == FILE and found.created_at == at:
            await audit_log.record(
                self.store, audit_log.FILE, "agent.version", agent_id, version=found.version
            )
        return found.version

    async def resolve(self, name: str) -> Agent | None:
        """The agent ``name`` runs: the current one, or an earlier version; None when it
        names no agent (or a version it never had)."""
        agent = self.agents.get(name)
        if agent is not None:
            return agent
        drafted = draft_of(name)
        if drafted is not None:
            return await self._draft(drafted)
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
        agent = self.runnable(current.id, record.content, f"{current.id}@{number}")
        return replace(agent, version=number, origin=current.origin)

    async def _draft(self, agent_id: str) -> Agent | None:
        """The stored agent's draft, built (the last one run is kept while unchanged)."""
        current = self.agents.get(agent_id)
        if current is not None and current.origin == FILE:
            return None  # a file's agent has no drafts: its file is its source
        stored = await self.store.stored_agent(agent_id)
        if stored is None or stored.draft is None:
            self._drafts.pop(agent_id, None)
            return None
        kept = self._drafts.get(agent_id)
        if kept is None or kept.content != stored.draft:
            built = self.runnable(agent_id, stored.draft, f"{agent_id}@{DRAFT}")
            kept = self._drafts[agent_id] = replace(built, origin=API)
        return kept

    def runnable(self, agent_id: str, text: str, source: str) -> Agent:
        """``build``, for a request: a definition that does not build is the request's
        400, saying why."""
        try:
            return self.build(agent_id, text, source)
        except ConfigError as exc:
            raise InvalidRequest(
                f"{source} cannot run with this server's configuration: " + "; ".join(exc.problems),
                param="model",
                code="model_version_unavailable",
            ) from None
