"""Tool policies: which of an agent's tools a key's runs may use."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from headend.tools.base import Tool
from headend.tools.builtin.agent_tool import AgentTool
from headend.tools.builtin.calculator import Calculator
from headend.tools.builtin.current_time import CurrentTime
from headend.tools.builtin.http_fetch import HttpFetch
from headend.tools.builtin.terminal import Terminal
from headend.tools.mcp import McpTool
from headend.tools.policy import EVERY_TOOL, ToolPolicy


def mcp_tool(server: str, name: str, read_only: bool | None) -> Tool:
    connection = SimpleNamespace(name=server, settings=SimpleNamespace(timeout=5.0))
    annotations = None if read_only is None else SimpleNamespace(read_only_hint=read_only)
    spec = SimpleNamespace(name=name, description="", input_schema=None, annotations=annotations)
    return McpTool(connection, spec)  # type: ignore[arg-type]


TOOLS: list[Tool] = [
    Calculator(),
    CurrentTime(),
    HttpFetch(),
    Terminal(),
    AgentTool("helper", "Helps."),
    mcp_tool("files", "read", True),
    mcp_tool("files", "write", False),
    mcp_tool("web", "search", None),
]


def allowed(policy: ToolPolicy) -> list[str]:
    return [tool.ref for tool in TOOLS if policy.allows(tool)]


def test_every_tool_by_default() -> None:
    assert allowed(EVERY_TOOL) == [tool.ref for tool in TOOLS]
    assert ToolPolicy.of(None) == EVERY_TOOL


def test_none() -> None:
    assert allowed(ToolPolicy.of("none")) == []


def test_read_only_is_what_tools_say_of_themselves() -> None:
    assert allowed(ToolPolicy.of("read-only")) == [
        "calculator",
        "current_time",
        "http_fetch",
        "agent:helper",
        "mcp:files/read",
    ]
    assert ToolPolicy.of("read-only").read_only


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (("calculator",), ["calculator"]),
        (("mcp:files",), ["mcp:files/read", "mcp:files/write"]),
        (("mcp:files/write", "agent:helper"), ["agent:helper", "mcp:files/write"]),
        (("mcp:file",), []),  # a server's name, not a prefix of one
    ],
)
def test_a_list_of_names_as_agent_files_write_them(
    names: tuple[str, ...], expected: list[str]
) -> None:
    policy = ToolPolicy.of(names)
    assert sorted(allowed(policy)) == sorted(expected)
    assert policy.describe() == sorted(names)


def test_a_call_cut_short_by_a_crash_runs_again_only_if_its_tool_says_that_is_safe() -> None:
    repeats = {tool.ref: tool.repeatable({}) for tool in TOOLS}
    assert repeats == {
        "calculator": True,
        "current_time": True,
        "http_fetch": True,  # a GET
        "terminal": False,
        "agent:helper": False,  # the agent it asks may have acted
        "mcp:files/read": True,
        "mcp:files/write": False,
        "mcp:web/search": False,  # says nothing: not safe
    }
    assert not HttpFetch().repeatable({"url": "https://example.com", "method": "POST"})
    connection = SimpleNamespace(name="db", settings=SimpleNamespace(timeout=5.0))
    hints = SimpleNamespace(read_only_hint=False, idempotent_hint=True)
    upsert = SimpleNamespace(name="upsert", description="", input_schema=None, annotations=hints)
    assert McpTool(connection, upsert).repeatable({})  # type: ignore[arg-type]


def test_which_calls_ask_a_person_first() -> None:
    from headend.tools.approval_policy import ApprovalNames, ApprovalPolicy

    def asking(policy: ApprovalPolicy, **arguments: str) -> list[str]:
        return [tool.ref for tool in TOOLS if policy.needs(tool, dict(arguments))]

    assert asking(ApprovalPolicy()) == []
    assert asking(ApprovalPolicy("always")) == [tool.ref for tool in TOOLS]
    named = ApprovalPolicy(ApprovalNames(always=["terminal", "mcp:files"]))
    assert asking(named) == ["terminal", "mcp:files/read", "mcp:files/write"]
    spared = ApprovalPolicy(ApprovalNames(never=["calculator", "mcp:files/read"]))
    assert "calculator" not in asking(spared)
    assert "mcp:files/read" not in asking(spared)
    assert "terminal" in asking(spared)
    # a key that asks before anything that does more than read
    writes = ApprovalPolicy(writes=True)
    assert asking(writes) == ["terminal", "agent:helper", "mcp:files/write", "mcp:web/search"]
    assert writes.needs(HttpFetch(), {"url": "https://example.com", "method": "POST"})
