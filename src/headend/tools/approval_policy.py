"""Which of an agent's tool calls stop to ask a person before they run.

An agent file's ``require_approval:`` takes OpenAI's shape: ``never`` (the default),
``always``, ``{always: [names]}`` or ``{never: [names]}``, with tools named as agent files
name them (``terminal``, ``http_fetch``, ``agent:<id>``, ``mcp:<server>`` for every tool of a
server, ``mcp:<server>/<tool>`` for one). A key may also require approval of every call
that does more than read (``KeyRecord.require_approval``): one whose tool is not read-only,
or whose repeat would not be safe (``http_fetch``'s POST, an agent tool: the agent it asks
may act).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from headend.tools.base import Tool
from headend.types import Json


class ApprovalNames(BaseModel):
    """``{always: [names]}`` or ``{never: [names]}``: one of the two."""

    model_config = ConfigDict(extra="forbid")

    always: list[str] | None = None
    never: list[str] | None = None

    @model_validator(mode="after")
    def _one_of_the_two(self) -> ApprovalNames:
        if (self.always is None) == (self.never is None):
            raise ValueError("give either always: [tool names] or never: [tool names]")
        return self


RequireApproval = Literal["always", "never"] | ApprovalNames


def names_cover(tool: Tool, names: frozenset[str] | list[str]) -> bool:
    """Whether ``names`` (as agent files write them) name this tool: itself, or for an MCP
    tool, its server."""
    ref = tool.ref
    return ref in names or (ref.startswith("mcp:") and ref.split("/")[0] in names)


def only_reads(tool: Tool, arguments: Json) -> bool:
    """This call only reads: its tool says so, and running it twice would do no more."""
    return tool.read_only and tool.repeatable(arguments)


@dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    rule: RequireApproval = "never"  # the agent file's
    writes: bool = False  # the key's: every call that does more than read

    def needs(self, tool: Tool, arguments: Json) -> bool:
        if self.writes and not only_reads(tool, arguments):
            return True
        rule = self.rule
        if rule == "always" or rule == "never":
            return rule == "always"
        if rule.always is not None:
            return names_cover(tool, rule.always)
        return not names_cover(tool, rule.never or [])


NO_APPROVAL = ApprovalPolicy()
