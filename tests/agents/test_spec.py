"""Agent files: front matter, body, validation with file and key in every message."""

from __future__ import annotations

from pathlib import Path

import pytest

from headend.agents.compose import merge_sampling
from headend.agents.registry import load_agents
from headend.agents.spec import parse_agent
from headend.errors import ConfigError
from headend.providers.model_routes import RouteTable
from headend.tools.registry import builtin_tools

LOCAL = RouteTable({}, {"local"})


def agent_file(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.md"
    path.write_text(text)
    return path


def test_front_matter_and_body(tmp_path: Path) -> None:
    path = agent_file(
        tmp_path,
        "helper",
        "---\ndescription: Helps.\nmodel: [local, other/m]\ntop_k: 20\nmirostat: 2\n"
        "pinned: [top_k]\nmax_iterations: 5\n---\n\nYou help.\n",
    )
    spec = parse_agent(path, builtin_tools())
    assert spec.id == "helper"
    assert spec.description == "Helps."
    assert spec.routes() == ["local", "other/m"]
    assert spec.system_prompt == "You help."
    assert spec.sampling().top_k == 20
    assert spec.sampling().mirostat == 2
    assert spec.max_iterations == 5


def test_a_file_without_front_matter_is_all_prompt(tmp_path: Path) -> None:
    spec = parse_agent(agent_file(tmp_path, "plain", "Just a prompt.\n"), builtin_tools())
    assert spec.system_prompt == "Just a prompt."
    assert spec.model == "local"


@pytest.mark.parametrize(
    ("front", "key"),
    [
        ("colour: red", "colour: unknown key"),
        ("temperature: 5", "temperature:"),
        ("temperature: warm", "temperature:"),
        ("max_iterations: 99", "max_iterations:"),
        ("pinned: [colour]", "pinned:"),
        ("model: []", "model:"),
        ("tools: [teleport]", "tools: unknown tool 'teleport'"),
        ("id: other", "id: unknown key"),
        ("mirostat: 3", "mirostat:"),
    ],
)
def test_bad_keys_are_named_with_the_file(tmp_path: Path, front: str, key: str) -> None:
    path = agent_file(tmp_path, "bad", f"---\n{front}\n---\nprompt\n")
    with pytest.raises(ConfigError) as caught:
        parse_agent(path, builtin_tools())
    message = str(caught.value)
    assert str(path) in message
    assert key in message


def test_invalid_yaml_is_reported(tmp_path: Path) -> None:
    path = agent_file(tmp_path, "broken", "---\nmodel: [local\n---\nprompt\n")
    with pytest.raises(ConfigError, match="invalid YAML front matter"):
        parse_agent(path, builtin_tools())


def test_every_bad_file_is_reported_at_once(tmp_path: Path) -> None:
    agent_file(tmp_path, "one", "---\ncolour: red\n---\n")
    agent_file(tmp_path, "two", "---\nmodel: nowhere\n---\n")
    agent_file(tmp_path, "three", "---\nmodel: local\n---\nfine\n")
    with pytest.raises(ConfigError) as caught:
        load_agents(tmp_path, routes=LOCAL)
    problems = caught.value.problems
    assert len(problems) == 2
    assert any("one.md: colour: unknown key" in p for p in problems)
    assert any("two.md: model: 'nowhere': no provider named 'nowhere'" in p for p in problems)


def test_the_packaged_agents_serve_when_the_user_has_no_agents(tmp_path: Path) -> None:
    registry = load_agents(tmp_path / "missing", routes=LOCAL)
    assert [agent.id for agent in registry] == ["assistant", "clock"]
    clock = registry.get("clock")
    assert clock is not None
    assert [tool.name for tool in clock.tools] == ["current_time"]
    assert clock.spec.tool_choice == "required"
    assert registry.directory is None
    user = tmp_path / "mine"
    user.mkdir()
    agent_file(user, "mine", "hello")
    assert [agent.id for agent in load_agents(user, routes=LOCAL)] == ["mine"]


def test_an_agent_file_sets_its_first_tool_choice_and_its_answers_format(
    tmp_path: Path,
) -> None:
    path = tmp_path / "card.md"
    path.write_text(
        "---\ntool_choice: required\nparallel_tool_calls: false\n"
        "response_format: {type: json_schema, json_schema: {schema: {type: object}}}\n---\nHi"
    )
    spec = parse_agent(path, builtin_tools())
    assert spec.tool_choice == "required"
    assert spec.parallel_tool_calls is False
    assert spec.response_format == {
        "type": "json_schema",
        "json_schema": {"schema": {"type": "object"}, "name": "answer"},
    }
    path.write_text("---\nresponse_format: {type: yaml}\n---\nHi")
    with pytest.raises(ConfigError) as caught:
        parse_agent(path, builtin_tools())
    assert "response_format" in str(caught.value)


def test_pinned_fields_keep_the_agent_value(tmp_path: Path) -> None:
    spec = parse_agent(
        agent_file(tmp_path, "p", "---\ntemperature: 0\nseed: 1\npinned: [temperature]\n---\n"),
        builtin_tools(),
    )
    merged = merge_sampling(spec, {"temperature": 1.5, "seed": 9, "top_p": 0.5})
    assert merged == {"temperature": 0, "seed": 9, "top_p": 0.5}


def test_packaged_agents_step_aside_when_their_route_does_not_exist(tmp_path: Path) -> None:
    gateway_only = RouteTable({"gpt": "openai/gpt-4o-mini"}, {"openai"})
    assert len(load_agents(tmp_path / "missing", routes=gateway_only)) == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    agent_file(mine, "lost", "---\nmodel: local\n---\n")
    with pytest.raises(ConfigError, match="no provider named 'local'"):
        load_agents(mine, routes=gateway_only)


@pytest.mark.parametrize(
    ("tools", "expected"),
    [
        ("[mcp:nowhere]", "no server 'nowhere' under mcp_servers"),
        ("['agent:ghost']", "no agent named 'ghost'"),
        ("[terminal]\ntool_timeouts: {calculator: 3}", "tool_timeouts: not tools of this agent"),
    ],
)
def test_tool_references_are_checked(tmp_path: Path, tools: str, expected: str) -> None:
    agent_file(tmp_path, "a", f"---\ntools: {tools}\n---\n")
    with pytest.raises(ConfigError, match=expected):
        load_agents(tmp_path, routes=LOCAL, tools=builtin_tools(["demo"]))


def test_agents_may_use_mcp_servers_and_each_other(tmp_path: Path) -> None:
    agent_file(tmp_path, "a", "---\ntools: ['mcp:demo', 'mcp:demo/add', 'agent:b']\n---\n")
    agent_file(tmp_path, "b", "---\ndescription: B.\ntools: [calculator]\n---\n")
    registry = load_agents(tmp_path, routes=LOCAL, tools=builtin_tools(["demo"]))
    a, b = registry.get("a"), registry.get("b")
    assert a is not None
    assert b is not None
    assert [ref.tool for ref in a.mcp] == [None, "add"]
    assert [tool.name for tool in a.tools] == ["agent_b"]
    assert a.acts
    assert b.acts


def test_require_approval_takes_openais_shape_and_names_only_the_agents_tools() -> None:
    from pydantic import ValidationError

    from headend.agents.spec import AgentSpec

    spec = AgentSpec(id="a", tools=["terminal", "mcp:files"], require_approval="always")
    assert spec.require_approval == "always"
    named = AgentSpec(
        id="a",
        tools=["terminal", "mcp:files"],
        require_approval={"never": ["mcp:files/read_file"]},
    )
    assert not isinstance(named.require_approval, str)
    assert named.require_approval.never == ["mcp:files/read_file"]
    for wrong in ("sometimes", {"always": ["terminal"], "never": []}, {"always": ["http_fetch"]}):
        with pytest.raises(ValidationError):
            AgentSpec(id="a", tools=["terminal"], require_approval=wrong)
