"""What a tool is: a name, a description, a JSON schema for its arguments, and an async run.

A tool that fails raises ``ToolError`` (or anything else): the loop turns it into the tool's
result text for the model, never into a failed request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from headend.types import Json


class ToolError(Exception):
    """A tool could not do what it was asked; the message goes back to the model."""


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a tool may know about the run that calls it."""

    agent_id: str
    request_id: str
    scratch: Path  # a directory of this conversation's own
    depth: int = 0  # how many agents deep this run is (agent tools call agents)
    allow_hosts: frozenset[str] = field(default_factory=frozenset)
    read_only: bool = False  # the key may only read: a tool that can also write refuses to
    # (agent id, input, depth) -> the agent's answer; set by the loop for agent tools
    call_agent: Callable[[str, str, int], Awaitable[str]] | None = None
    # every passage hosted searches gave the model in this run, numbered from 1
    sources: list[Source] = field(default_factory=list)


class Tool(Protocol):
    name: str  # as the model sees it
    ref: str  # as an agent file names it: calculator, agent:<id>, mcp:<server>/<tool>
    description: str
    parameters: Json  # JSON schema of the arguments object
    timeout: float  # seconds
    read_only: bool  # it only reads (see headend.tools.policy)

    async def run(self, arguments: Json, context: ToolContext) -> str:
        """The result the model reads."""
        ...

    def label(self, arguments: Json) -> str:
        """A short human line for progress events: what this call is doing."""
        ...

    def repeatable(self, arguments: Json) -> bool:
        """Whether this call may run again when a crash cut it short, not knowing whether
        it took effect: it only reads, or doing it twice is doing it once."""
        ...


@dataclass(frozen=True, slots=True)
class Source:
    """A passage a hosted search gave the model, numbered in its run: the model cites it
    as ``[number]``."""

    number: int
    file_id: str
    filename: str
    text: str


@dataclass(frozen=True, slots=True)
class HostedResult:
    """A hosted tool's outcome: the text the model reads, its output item as the Responses
    API shows it, and the passages it may cite."""

    text: str
    item: Json
    sources: tuple[Source, ...] = ()


@runtime_checkable
class HostedTool(Tool, Protocol):
    """A tool the Responses API shows as an output item of its own (``file_search_call``),
    not as a function call: its progress carries the item."""

    def begun(self, call_id: str, arguments: Json) -> Json:
        """The item while the call runs."""
        ...

    async def run_hosted(
        self, call_id: str, arguments: Json, context: ToolContext
    ) -> HostedResult: ...


def function_spec(tool: Tool) -> Json:
    """The tool as an OpenAI function tool."""
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }
