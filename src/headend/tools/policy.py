"""Which of an agent's tools a key's runs may use.

A key may allow every tool (the default), none, only those that read, or a list of names as
an agent file writes them (``calculator``, ``agent:<id>``, ``mcp:<server>`` for all of a
server's tools, ``mcp:<server>/<tool>`` for one). Tools a key may not use are not offered to
the model, and a call to one (a model may name a tool it was not offered) is refused.

Tools say whether they only read: ``calculator`` and ``current_time`` do, ``terminal`` does
not, ``http_fetch`` does for GET only (a read-only run refuses its POST), an agent tool does
(the agent it calls runs under the same policy), and an MCP tool does when its server marks
it ``readOnlyHint``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from headend.tools.approval_policy import names_cover
from headend.tools.base import Tool

Mode = Literal["all", "none", "read-only", "list"]
NONE = "none"
READ_ONLY = "read-only"


@dataclass(frozen=True, slots=True)
class ToolPolicy:
    mode: Mode = "all"
    names: frozenset[str] = frozenset()

    @classmethod
    def of(cls, grant: str | tuple[str, ...] | None) -> ToolPolicy:
        """From a key's stored grant: None, "none", "read-only" or names."""
        if grant is None:
            return EVERY_TOOL
        if grant == NONE:
            return cls("none")
        if grant == READ_ONLY:
            return cls("read-only")
        return cls("list", frozenset(grant))

    @property
    def read_only(self) -> bool:
        return self.mode == "read-only"

    def allows(self, tool: Tool) -> bool:
        if self.mode == "all":
            return True
        if self.mode == "none":
            return False
        if self.mode == "read-only":
            return tool.read_only
        return names_cover(tool, self.names)

    def describe(self) -> str | list[str]:
        """As keys are listed: "all", "none", "read-only", or the names."""
        return sorted(self.names) if self.mode == "list" else self.mode


EVERY_TOOL = ToolPolicy()
