"""headend's agents as the tools of an MCP server at ``/mcp`` (Streamable HTTP), driven by the
``mcp`` SDK's own client and by Claude Code (``claude mcp add --transport http``): the key's
agents listed, one run with its tools' progress as MCP progress notifications, the
conversation continued by the ``session_id`` of the result, and the key's allowlist and
limits holding."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.clients import BIN, node_env, require_clients
from tests.conftest import RunningServer
from tests.e2e.sites import ADMIN, issue, site_fixture
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

HELPER = (
    "---\nmodel: up/helper\ndescription: Answers questions about the shop's orders.\n---\n"
    "You help with orders.\n"
)
CALC = "---\nmodel: up/calc\ntools: [calculator]\ndescription: Works sums out.\n---\nYou compute.\n"
HIDDEN = "---\nmodel: up/hidden\n---\nYou are not for everyone.\n"
CAREFUL = "---\nmodel: up/careful\ntools: [calculator]\nrequire_approval: always\n---\nYou ask.\n"
CLAUDE_MODEL = "claude-opus-5-5"  # Claude Code 2.1.330's default


served = site_fixture(
    "mc",
    {"helper": HELPER, "calc": CALC, "hidden": HIDDEN, "careful": CAREFUL},
    f"  {CLAUDE_MODEL}: up/opus\n",
)


@asynccontextmanager
async def connected(server: RunningServer, key: str) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http,
        streamable_http_client(server.base_url + "/mcp", http_client=http) as (r, w),
        ClientSession(r, w) as session,
    ):
        await session.initialize()
        yield session


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def agent_key(server: RunningServer, **limits: object) -> str:
    return str(
        issue(server, name="mcp", scopes=["chat"], agents=["helper", "calc"], **limits)["secret"]
    )


def test_the_keys_agents_are_its_tools(served: RunningServer) -> None:
    async def go() -> Any:
        async with connected(served, agent_key(served)) as session:
            return (await session.list_tools()).tools

    tools = {tool.name: tool for tool in run(go())}
    assert set(tools) == {"helper", "calc"}  # not "hidden": the key may not call it
    assert tools["helper"].description == "Answers questions about the shop's orders."
    schema = tools["calc"].input_schema
    assert schema["required"] == ["message"]
    assert set(schema["properties"]) == {"message", "session_id"}


def test_a_call_runs_the_agent_with_progress_and_its_session_goes_on(
    served: RunningServer, fake: FakeUpstream
) -> None:
    sum_call = {"id": "c1", "name": "calculator", "arguments": json.dumps({"expression": "6*7"})}
    fake.script(
        "mc",
        Reply(text="", tool_calls=[sum_call]),
        Reply(text="It is 42."),
        Reply(text="You asked about 6*7."),
    )
    reported: list[tuple[float, str | None]] = []

    async def go() -> tuple[Any, Any]:
        async with connected(served, agent_key(served)) as session:

            async def on_progress(
                progress: float, total: float | None, message: str | None
            ) -> None:
                reported.append((progress, message))

            first = await session.call_tool(
                "calc", {"message": "What is 6*7?"}, progress_callback=on_progress
            )
            assert first.structured_content is not None
            again = await session.call_tool(
                "calc",
                {
                    "message": "What did I ask?",
                    "session_id": first.structured_content["session_id"],
                },
            )
            return first, again

    first, again = run(go())
    assert first.is_error is False
    assert first.content[0].text == "It is 42."
    assert first.structured_content["answer"] == "It is 42."
    assert first.structured_content["session_id"].startswith("sess_")
    assert [message for _, message in reported] == [
        "calculator: calculating 6*7",
        "calculator: calculating 6*7 (done)",
    ]
    assert again.content[0].text == "You asked about 6*7."
    assert again.structured_content["session_id"] == first.structured_content["session_id"]
    sent = fake.received("mc")[-1].body["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == [
        "What is 6*7?",
        "What did I ask?",
    ]


def test_unknown_tools_bad_arguments_and_refusals(
    served: RunningServer, fake: FakeUpstream
) -> None:
    async def go() -> list[Any]:
        found: list[Any] = []
        async with connected(served, agent_key(served, rpm=1)) as session:
            for name, arguments in (("hidden", {"message": "Hi"}), ("helper", {"text": "Hi"})):
                with pytest.raises(MCPError) as refused:
                    await session.call_tool(name, arguments)
                found.append(refused.value.error)
            found.append(await session.call_tool("helper", {"message": "One"}))
            found.append(await session.call_tool("helper", {"message": "Two"}))
        return found

    fake.script("mc", Reply(text="One."))
    hidden, bad, one, two = run(go())
    assert (hidden.code, hidden.message) == (-32602, "Unknown tool: hidden")
    assert bad.code == -32602
    assert one.is_error is False
    assert two.is_error is True  # the key's rate limit holds per call
    assert "rate_limit_exceeded" in two.content[0].text
    assert len(fake.received("mc")) == 1


def test_the_key_is_checked_before_the_mcp_server_sees_the_request(served: RunningServer) -> None:
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    accept = {"Accept": "application/json, text/event-stream"}
    refused = httpx.post(served.base_url + "/mcp", json=call, headers=accept)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    reader = str(issue(served, name="reader", scopes=["models:read"])["secret"])
    scoped = httpx.post(
        served.base_url + "/mcp", json=call, headers={**accept, "Authorization": f"Bearer {reader}"}
    )
    assert scoped.status_code == 403
    listed = httpx.post(
        served.base_url + "/mcp", json=call, headers={**accept, "Authorization": f"Bearer {ADMIN}"}
    )
    assert listed.status_code == 200
    assert "hidden" in listed.text  # an admin may call every agent


def test_claude_code_calls_an_agent_over_mcp(
    served: RunningServer, fake: FakeUpstream, tmp_path: Path
) -> None:
    require_clients()
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    key = agent_key(served)
    claude_key = str(issue(served, name="claude", scopes=["chat"])["secret"])
    env = node_env(HOME=str(home), ANTHROPIC_BASE_URL=served.base_url, ANTHROPIC_API_KEY=claude_key)

    def claude(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "claude"), *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
        )

    mcp_url = served.base_url + "/mcp"
    added = claude(
        "mcp",
        "add",
        "--transport",
        "http",
        "headend",
        mcp_url,
        "--header",
        f"Authorization: Bearer {key}",
    )
    assert added.returncode == 0, added.stderr[-2000:]
    search = {
        "id": "toolu_1",
        "name": "ToolSearch",
        "arguments": '{"query": "select:mcp__headend__helper"}',
    }
    ask = {
        "id": "toolu_2",
        "name": "mcp__headend__helper",
        "arguments": '{"message": "Where is order 7?"}',
    }
    fake.script(
        "mc",
        Reply(text="", tool_calls=[search]),  # Claude Code's model finds the tool,
        Reply(text="", tool_calls=[ask]),  # calls it,
        Reply(text="Order 7 ships today."),  # the helper agent answers,
        Reply(text="The helper says order 7 ships today."),  # and Claude Code's model says so
    )
    done = claude(
        "-p",
        "Ask the helper agent where order 7 is.",
        "--output-format",
        "json",
        "--allowedTools",
        "mcp__headend__helper",
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    assert json.loads(done.stdout)["result"] == "The helper says order 7 ships today."
    claude_first, claude_found, agent, claude_last = fake.received("mc")
    assert claude_first.body["model"] == "opus"
    assert "mcp__headend__helper" in {
        tool["function"]["name"] for tool in claude_found.body["tools"]
    }
    assert agent.body["model"] == "helper"
    assert agent.body["messages"][-1] == {"role": "user", "content": "Where is order 7?"}
    result = claude_last.body["messages"][-1]
    assert (result["role"], result["tool_call_id"]) == ("tool", "toolu_2")
    assert "Order 7 ships today." in result["content"]


def test_a_call_that_waits_for_approval_says_so_and_gives_the_request(
    served: RunningServer, fake: FakeUpstream
) -> None:
    sum_call = {"id": "c1", "name": "calculator", "arguments": json.dumps({"expression": "6*7"})}
    fake.script("mc", Reply(text="", tool_calls=[sum_call]))
    key = str(issue(served, name="careful", scopes=["chat"], agents=["careful"])["secret"])

    async def go() -> Any:
        async with connected(served, key) as session:
            return await session.call_tool("careful", {"message": "What is 6*7?"})

    result = run(go())
    assert result.is_error is False
    assert result.content[0].text.startswith("Waiting for your approval before running:")
    (waiting,) = result.structured_content["waiting_for_approval"]
    assert (waiting["name"], json.loads(waiting["arguments"])) == (
        "calculator",
        {"expression": "6*7"},
    )
    assert len(fake.received("mc")) == 1  # the calculator did not run
