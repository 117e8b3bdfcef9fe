"""Tools by name: built-ins register through the same path a plugin would use.

Names an agent file may list under ``tools:``:
- a registered tool (``http_fetch``, ``current_time``, ``calculator``, ``terminal``);
- ``agent:<id>``: another agent of this server, as a tool;
- ``mcp:<server>`` or ``mcp:<server>/<tool>``: tools of a server under ``mcp_servers:``,
  found when the server first starts (see ``headend.tools.mcp``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from headend.tools.base import Tool
from headend.tools.builtin.agent_tool import AgentTool
from headend.tools.mcp import McpRef

AGENT_PREFIX = "agent:"
MCP_PREFIX = "mcp:"


class UnknownTool(LookupError):
    pass


class ToolRegistry:
    def __init__(self, mcp_servers: Collection[str] = ()) -> None:
        self._factories: dict[str, Callable[[], Tool]] = {}
        self._mcp_servers = frozenset(mcp_servers)

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
            server = McpRef.parse(name).server
            if server not in self._mcp_servers:
                known = ", ".join(sorted(self._mcp_servers)) or "none configured"
                raise UnknownTool(f"{name!r}: no server {server!r} under mcp_servers ({known})")
            return
        known = ", ".join([*self.names(), "agent:<id>", "mcp:<server>"])
        raise UnknownTool(f"unknown tool {name!r} (known: {known})")

    def build(self, names: Collection[str], agents: dict[str, str]) -> list[Tool]:
        """Tool instances for an agent; ``agents`` maps agent ids to their descriptions."""
        tools: list[Tool] = []
        for name in names:
            if name.startswith(MCP_PREFIX):
                continue  # found at run time, once the server has started
            if name.startswith(AGENT_PREFIX):
                target = name[len(AGENT_PREFIX) :]
                if target not in agents:
                    raise UnknownTool(f"{name!r}: no agent named {target!r}")
                tools.append(AgentTool(target, agents[target]))
            else:
                self.check(name)
                tools.append(self._factories[name]())
        return tools


def mcp_refs(names: Collection[str]) -> list[McpRef]:
    return [McpRef.parse(name) for name in names if name.startswith(MCP_PREFIX)]


def builtin_tools(mcp_servers: Collection[str] = ()) -> ToolRegistry:
    from headend.tools.builtin.calculator import Calculator
    from headend.tools.builtin.current_time import CurrentTime
    from headend.tools.builtin.http_fetch import HttpFetch
    from headend.tools.builtin.terminal import Terminal

    registry = ToolRegistry(mcp_servers)
    for factory in (Calculator, CurrentTime, HttpFetch, Terminal):
        registry.register(factory().name, factory)
    return registry
