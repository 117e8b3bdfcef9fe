"""The agents this server offers, loaded from the agents directory at startup."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from headend.agents.spec import AgentSpec, agent_id_of, parse_agent_text, read_agent
from headend.config import Settings
from headend.errors import ConfigError
from headend.guardrails.rules import GuardrailSpec, JudgeCheck
from headend.providers.base import Provider, chats
from headend.providers.model_routes import RouteTable, Target, UnknownRoute
from headend.tools.base import Tool
from headend.tools.mcp import McpRef
from headend.tools.registry import ToolRegistry, UnknownTool, builtin_tools, mcp_refs

PACKAGED_AGENTS = "data/agents"
FILE = "file"  # an agent defined by its file in the agents directory
API = "api"  # an agent defined through the admin API, kept in the store
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Agent:
    spec: AgentSpec
    targets: tuple[Target, ...]
    tools: tuple[Tool, ...] = ()
    mcp: tuple[McpRef, ...] = ()
    content: str = ""  # the definition as its file has it: what a version records
    version: int = 0  # 0 until recorded in the store (and for a draft)
    origin: str = FILE  # FILE or API: where its definition is kept

    @property
    def acts(self) -> bool:
        """Whether the agent has tools of its own, so its turns run the tool loop."""
        return bool(self.tools or self.mcp)

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(slots=True)
class AgentRegistry:
    agents: dict[str, Agent]
    directory: Path | None
    loaded_at: int = field(default_factory=lambda: int(time.time()))
    # packaged agents left out, and why (no `local` provider in a gateway-only config)
    skipped: dict[str, str] = field(default_factory=dict)

    def get(self, agent_id: str) -> Agent | None:
        return self.agents.get(agent_id)

    def __iter__(self) -> Iterator[Agent]:
        return iter(sorted(self.agents.values(), key=lambda agent: agent.id))

    def __len__(self) -> int:
        return len(self.agents)


def packaged_agent_files() -> list[Path]:
    root = resources.files("headend").joinpath(PACKAGED_AGENTS)
    return sorted(Path(str(entry)) for entry in root.iterdir() if entry.name.endswith(".md"))


def agent_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(path for path in directory.glob("*.md") if path.is_file())


@dataclass(frozen=True, slots=True)
class AgentFiles:
    """What the agent files say now: the agents that build, and each other file's problems
    (by the agent id its name gives); ``directory`` None when the packaged agents serve."""

    agents: dict[str, Agent]
    problems: dict[str, list[str]]
    directory: Path | None
    skipped: dict[str, str] = field(default_factory=dict)  # packaged agents left out, why

    def all_problems(self) -> list[str]:
        return [line for lines in self.problems.values() for line in lines]


def read_agent_files(
    directory: Path,
    *,
    routes: RouteTable,
    tools: ToolRegistry,
    descriptions: dict[str, str] | None = None,
) -> AgentFiles:
    """Every agent file in ``directory``, or the packaged ones when it holds none, each
    built or its problems listed (naming the file and key). ``descriptions``: other agents
    theirs may call as tools."""
    files = agent_files(directory)
    source_dir: Path | None = directory
    packaged = not files
    if packaged:
        files, source_dir = packaged_agent_files(), None
    problems: dict[str, list[str]] = {}
    agents: dict[str, Agent] = {}
    skipped: dict[str, str] = {}
    for path in files:
        try:
            text = read_agent(path)
            spec = parse_agent_text(agent_id_of(path), text, str(path), tools)
        except ConfigError as exc:
            problems[path.stem] = exc.problems
            continue
        if routes.for_client(spec.id) is not None:
            problems[spec.id] = [f"{path}: the agent id {spec.id!r} is also a name under models:"]
            continue
        targets: tuple[Target, ...] = ()
        try:
            targets = agent_targets(spec, routes)
        except ConfigError as exc:
            if packaged:  # A gateway-only setup has no `local` provider for the assistant.
                skipped[spec.id] = "; ".join(exc.problems)
                continue
            problems[spec.id] = exc.problems  # its tools are checked too, below
        agents[spec.id] = Agent(spec=spec, targets=targets, content=text)
    known = (descriptions or {}) | {agent_id: a.spec.description for agent_id, a in agents.items()}
    for agent_id, agent in list(agents.items()):
        try:
            agents[agent_id] = with_tools(agent, tools, known)
        except ConfigError as exc:
            problems[agent_id] = problems.get(agent_id, []) + exc.problems
    for agent_id in problems:
        agents.pop(agent_id, None)
    return AgentFiles(agents, problems, source_dir, skipped)


def load_agents(
    directory: Path, *, routes: RouteTable, tools: ToolRegistry | None = None
) -> AgentRegistry:
    """Every agent file in ``directory``, or the packaged ones when it holds none.

    All problems of all files are reported together, each naming its file and key.
    """
    found = read_agent_files(directory, routes=routes, tools=tools or builtin_tools())
    if found.problems:
        raise ConfigError(found.all_problems())
    return AgentRegistry(agents=found.agents, directory=found.directory, skipped=found.skipped)


def check_chat_targets(registry: AgentRegistry, providers: Mapping[str, Provider]) -> None:
    """Refuse agents routed to a provider that does not chat (loaded for embeddings only):
    at start-up and in ``headend check``, not on each request."""
    problems = [
        f"{agent.spec.source}: model: provider {target.provider!r} serves embeddings only; "
        "an agent needs one that chats"
        for agent in registry
        for target in agent.targets
        if target.provider in providers and not chats(providers[target.provider])
    ]
    if problems:
        raise ConfigError(problems)


def skipped_notes(registry: AgentRegistry, directory: Path) -> list[str]:
    """What an operator should hear about packaged agents that are not served."""
    return [
        f"the packaged agent {agent_id!r} is not served: {why} (add a 'local' provider "
        f"or put agent files in {directory})"
        for agent_id, why in sorted(registry.skipped.items())
    ]


def build_agent(
    agent_id: str,
    text: str,
    source: str,
    *,
    routes: RouteTable,
    tools: ToolRegistry,
    descriptions: dict[str, str],
) -> Agent:
    """An agent from its definition, checked as an agent file is at start-up (ConfigError:
    the same messages as ``headend check``, beginning with ``source``)."""
    spec = parse_agent_text(agent_id, text, source, tools)
    agent = Agent(spec=spec, targets=agent_targets(spec, routes), content=text)
    return with_tools(agent, tools, descriptions)


def agent_targets(spec: AgentSpec, routes: RouteTable) -> tuple[Target, ...]:
    """What the agent's ``model:`` routes resolve to, in order."""
    targets: list[Target] = []
    unresolved: list[str] = []
    for route in spec.routes():
        try:
            targets.extend(routes.resolve(route))
        except UnknownRoute as exc:
            unresolved.append(f"{spec.source}: model: {route!r}: {exc}")
    unresolved += unknown_judges(spec.guardrails, routes, spec.source)
    if unresolved:
        raise ConfigError(unresolved)
    return tuple(targets)


def unknown_judges(specs: Sequence[GuardrailSpec], routes: RouteTable, source: str) -> list[str]:
    """A line for each judge whose ``model`` is no model route."""
    problems = []
    for n, spec in enumerate(specs):
        if isinstance(spec, JudgeCheck):
            try:
                routes.resolve(spec.model)
            except UnknownRoute as exc:
                problems.append(f"{source}: guardrails.{n}.model: {spec.model!r}: {exc}")
    return problems


def check_judges(settings: Settings, routes: RouteTable) -> None:
    """headend.yaml's judges each name a model route (ConfigError if not)."""
    problems = unknown_judges(settings.guardrails, routes, settings.source)
    if problems:
        raise ConfigError(problems)


def with_tools(agent: Agent, tools: ToolRegistry, descriptions: dict[str, str]) -> Agent:
    """The agent with its tools built (``descriptions``: the agents it may call as tools)."""
    spec = agent.spec
    try:
        built = tools.build(spec.tools, descriptions)
    except UnknownTool as exc:
        raise ConfigError([f"{spec.source}: tools: {exc}"]) from None
    for tool in built:
        tool.timeout = spec.tool_timeouts.get(tool.name, tool.timeout)
    strays = set(spec.tool_timeouts) - {tool.name for tool in built}
    if strays:
        raise ConfigError(
            [f"{spec.source}: tool_timeouts: not tools of this agent: " + ", ".join(sorted(strays))]
        )
    return replace(agent, tools=tuple(built), mcp=tuple(mcp_refs(spec.tools)))
