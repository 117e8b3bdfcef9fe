"""The agents this server offers, loaded from the agents directory at startup."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from headend.agents.spec import AgentSpec, parse_agent
from headend.errors import ConfigError
from headend.providers.routes import RouteTable, Target, UnknownRoute

PACKAGED_AGENTS = "data/agents"
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Agent:
    spec: AgentSpec
    targets: tuple[Target, ...]

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(slots=True)
class AgentRegistry:
    agents: dict[str, Agent]
    directory: Path | None
    loaded_at: int = field(default_factory=lambda: int(time.time()))

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


def load_agents(
    directory: Path, *, routes: RouteTable, known_tools: Collection[str] = ()
) -> AgentRegistry:
    """Every agent file in ``directory``, or the packaged ones when it holds none.

    All problems of all files are reported together, each naming its file and key.
    """
    files = agent_files(directory)
    source_dir: Path | None = directory
    packaged = not files
    if packaged:
        files, source_dir = packaged_agent_files(), None
    problems: list[str] = []
    agents: dict[str, Agent] = {}
    for path in files:
        try:
            spec = parse_agent(path, known_tools)
        except ConfigError as exc:
            problems += exc.problems
            continue
        if routes.for_client(spec.id) is not None:
            problems.append(f"{path}: the agent id {spec.id!r} is also a name under models:")
        targets: list[Target] = []
        unresolved: list[str] = []
        for route in spec.routes():
            try:
                targets.extend(routes.resolve(route))
            except UnknownRoute as exc:
                unresolved.append(f"{path}: model: {route!r}: {exc}")
        if unresolved and packaged:
            # A gateway-only setup has no `local` provider for the packaged assistant.
            log.info("not serving packaged agent %s: %s", spec.id, "; ".join(unresolved))
            continue
        problems += unresolved
        agents[spec.id] = Agent(spec=spec, targets=tuple(targets))
    if problems:
        raise ConfigError(problems)
    return AgentRegistry(agents=agents, directory=source_dir)
