"""MCP connectors: a real MCP server over stdio, started lazily, reused, restarted."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionStreamOptionsParam

from tests.conftest import ROOT, RunningServer, free_port, start_server, stop_server
from tests.daemons import mcp_over_http
from tests.e2e.test_agent_tools import call, tool_results
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]
CONFIG = """
providers:
  up: {{type: openai, base_url: "{url}/v1", retry: {{attempts: 1}}}}
mcp_servers:
  demo:
    command: {python}
    args: [{script}]
    env: {{PIDFILE: "{pidfile}"}}
  web:
    url: http://127.0.0.1:{http_port}/mcp
    headers: {{Authorization: Bearer mcp-token}}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mcp")


@pytest.fixture(scope="module")
def http_mcp(site: Path) -> Iterator[int]:
    """The same MCP server over streamable HTTP on a loopback port."""
    with mcp_over_http(free_port(), site / "http-pids") as port:
        yield port


@pytest.fixture(scope="module")
def mcp_server(upstream: FakeUpstream, site: Path, http_mcp: int) -> Iterator[RunningServer]:
    (site / "agents").mkdir()
    (site / "agents" / "webtools.md").write_text("---\nmodel: up/m\ntools: [mcp:web/shout]\n---\n")
    (site / "agents" / "toolsmith.md").write_text("---\nmodel: up/m\ntools: [mcp:demo]\n---\n")
    (site / "agents" / "adder.md").write_text("---\nmodel: up/m\ntools: [mcp:demo/add]\n---\n")
    (site / "headend.yaml").write_text(
        CONFIG.format(
            url=upstream.url("m"),
            python=sys.executable,
            script=ROOT / "tests" / "mcp_server.py",
            pidfile=site / "pids",
            http_port=http_mcp,
        )
    )
    server = start_server(
        site / "agents", site / "server.log", "--config", str(site / "headend.yaml")
    )
    yield server
    stop_server(server)


@pytest.fixture
def client(mcp_server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=mcp_server.api, api_key="unused", max_retries=0, timeout=60)


def starts(site: Path) -> list[str]:
    pids = site / "pids"
    return pids.read_text().split() if pids.exists() else []


def test_mcp_tools_are_offered_and_called_starting_the_server_lazily(
    client: openai.OpenAI, fake: FakeUpstream, site: Path
) -> None:
    assert starts(site) == []  # nothing has needed it yet
    fake.script(
        "m",
        Reply(
            text="",
            tool_calls=[
                call("mcp__demo__add", {"a": 2, "b": 40}, "a1"),
                call("mcp__demo__shout", {"text": "hi"}, "s1"),
            ],
        ),
        Reply(text="Done."),
    )
    assert (
        client.chat.completions.create(model="toolsmith", messages=HI).choices[0].message.content
        == "Done."
    )
    first, second = fake.received("m")
    assert {t["function"]["name"] for t in first.body["tools"]} == {
        "mcp__demo__add",
        "mcp__demo__shout",
        "mcp__demo__crash",
    }
    add = next(t for t in first.body["tools"] if t["function"]["name"] == "mcp__demo__add")
    assert add["function"]["description"] == "Add two integers."
    assert set(add["function"]["parameters"]["properties"]) == {"a", "b"}
    assert tool_results(second.body) == {"a1": "42", "s1": "HI"}
    assert len(starts(site)) == 1


def test_the_server_is_reused_and_one_tool_can_be_picked(
    client: openai.OpenAI, fake: FakeUpstream, site: Path
) -> None:
    fake.script(
        "m",
        Reply(text="", tool_calls=[call("mcp__demo__add", {"a": 1, "b": 1}, "a2")]),
        Reply(text="2"),
    )
    client.chat.completions.create(model="adder", messages=HI)
    first, second = fake.received("m")
    assert [t["function"]["name"] for t in first.body["tools"]] == ["mcp__demo__add"]
    assert tool_results(second.body) == {"a2": "2"}
    assert len(starts(site)) == 1


def test_a_tool_error_goes_back_to_the_model(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script(
        "m",
        Reply(text="", tool_calls=[call("mcp__demo__add", {"a": "x"}, "bad")]),
        Reply(text="Oops."),
    )
    client.chat.completions.create(model="toolsmith", messages=HI)
    assert tool_results(fake.received("m")[1].body)["bad"].startswith("Error:")


def test_a_dead_server_is_started_again(
    client: openai.OpenAI, fake: FakeUpstream, site: Path
) -> None:
    fake.script(
        "m",
        Reply(text="", tool_calls=[call("mcp__demo__crash", {}, "c")]),
        Reply(text="It crashed."),
        Reply(text="", tool_calls=[call("mcp__demo__add", {"a": 5, "b": 5}, "again")]),
        Reply(text="10"),
    )
    client.chat.completions.create(model="toolsmith", messages=HI)
    assert tool_results(fake.received("m")[1].body)["c"].startswith("Error:")
    client.chat.completions.create(model="toolsmith", messages=HI)
    assert tool_results(fake.received("m")[3].body) == {"again": "10"}
    assert len(starts(site)) == 2


def test_an_mcp_server_over_streamable_http(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script(
        "m",
        Reply(text="", tool_calls=[call("mcp__web__shout", {"text": "far"}, "w")]),
        Reply(text="FAR it is."),
    )
    client.chat.completions.create(model="webtools", messages=HI)
    first, second = fake.received("m")
    assert [t["function"]["name"] for t in first.body["tools"]] == ["mcp__web__shout"]
    assert tool_results(second.body) == {"w": "FAR"}


def test_mcp_tools_in_a_streamed_run(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script(
        "m",
        Reply(text="", tool_calls=[call("mcp__demo__add", {"a": 20, "b": 22}, "s")]),
        Reply(text="The sum is 42."),
    )
    chunks = list(
        client.chat.completions.create(
            model="toolsmith",
            messages=HI,
            stream=True,
            # headend's own stream options, which the SDK does not know
            stream_options=cast(
                ChatCompletionStreamOptionsParam,
                {"include_tool_progress": True, "tool_progress_format": "chunk"},
            ),
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The sum is 42."
    labels = [c.model_extra["tool_progress"]["label"] for c in chunks if not c.choices]  # type: ignore[index]
    assert labels == ["demo/add", "demo/add"]
    assert tool_results(fake.received("m")[1].body) == {"s": "42"}
