"""Tools by name: built-ins register through the same path a plugin would use.

Names an agent file may list under ``tools:``:
- a registered tool (``http_fetch``, ``current_time``, ``calculator``, ``terminal``);
- ``agent:<id>``: another agent of this server, as a tool.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from headend.tools.base import Tool
from headend.tools.builtin.agent_tool import AgentTool

AGENT_PREFIX = "agent:"
MCP_PREFIX = "mcp:"


class UnknownTool(LookupError):
    pass


class ToolRegistry:
    def __init__(self) -> None:
        self._factories: dict[str, Callable[[], Tool]] = {}

    def register(self, name: str, factory: Callable[[], Tool]) -> None:
        if name in self._factories:
            raise ValueError(f"tool {name!r} is already registered")
        self._factories[name] = factory

    def names(self) -> list[str]:
        return sorted(self._factories)

    def check(self, name: str) -> None:
        """Raise UnknownTool unless an agent file may list ``name``."""
        if name in self._factories or (name.startswith(AGENT_PREFIX) and name[6:]):
            return
        if name.startswith(MCP_PREFIX):
            raise UnknownTool(f"{name!r}: MCP connectors are not available yet")
        known = ", ".join([*self.names(), "agent:<id>"])
        raise UnknownTool(f"unknown tool {name!r} (known: {known})")

    def build(self, names: Collection[str], agents: dict[str, str]) -> list[Tool]:
        """Tool instances for an agent; ``agents`` maps agent ids to their descriptions."""
        tools: list[Tool] = []
        for name in names:
            if name.startswith(AGENT_PREFIX):
                target = name[len(AGENT_PREFIX) :]
                if target not in agents:
                    raise UnknownTool(f"{name!r}: no agent named {target!r}")
                tools.append(AgentTool(target, agents[target]))
            else:
                self.check(name)
                tools.append(self._factories[name]())
        return tools


def builtin_tools() -> ToolRegistry:
    from headend.tools.builtin.calculator import Calculator
    from headend.tools.builtin.current_time import CurrentTime
    from headend.tools.builtin.http_fetch import HttpFetch
    from headend.tools.builtin.terminal import Terminal

    registry = ToolRegistry()
    for factory in (Calculator, CurrentTime, HttpFetch, Terminal):
        registry.register(factory().name, factory)
    return registry
