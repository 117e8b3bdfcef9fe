"""Codex CLI (``@openai/codex``, pinned in tests/clients), unchanged and on its defaults but
for the base URL, the key and its telemetry: a plain prompt, its JSON event stream, a tool
round trip through an MCP server Codex itself runs, and a resumed conversation.

Codex's default model takes the "responses-lite" request shape (tools inside an
``additional_tools`` input item, every call through a JavaScript ``exec`` tool); a model name
Codex does not know takes the classic one (``namespace`` tools at the top). headend routes
both names to the fake upstream, as an operator routes the names clients ask for."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.clients import BIN, MCP_TINY, mcp_calls, node_env, require_clients
from tests.conftest import RunningServer
from tests.e2e.sites import ADMIN, issue, site_fixture
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

DEFAULT_MODEL = "gpt-6.1-sol"  # Codex 0.169.0's default
ROUTES = f"  {DEFAULT_MODEL}: up/sol\n"
CONFIG = """openai_base_url = "{api}"
check_for_update_on_startup = false

[analytics]
enabled = false

[feedback]
enabled = false

[otel]
exporter = "none"

[features]
plugins = false  # on by default, it syncs a marketplace from github.com at every start

[mcp_servers.tiny]
command = "{python}"
args = ["{server}"]
env = {{ MCP_CALLS = "{calls}" }}
default_tools_approval_mode = "approve"  # codex exec never asks, so MCP calls need this
"""


@dataclass
class Codex:
    home: Path
    work: Path
    key: str

    def run(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "codex"), "exec", "--strict-config", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            cwd=self.work,
            env=node_env(
                HOME=str(self.home), CODEX_HOME=str(self.home / "codex"), CODEX_API_KEY=self.key
            ),
        )

    def calls(self) -> list[dict[str, object]]:
        return mcp_calls(self.home / "mcp_calls.jsonl")


served = site_fixture("x", None, ROUTES, before=require_clients)


@pytest.fixture
def codex(served: RunningServer, tmp_path: Path) -> Codex:
    home, work = tmp_path / "home", tmp_path / "work"
    (home / "codex").mkdir(parents=True)
    work.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    (home / "codex" / "config.toml").write_text(
        CONFIG.format(
            api=served.api,
            python=sys.executable,
            server=MCP_TINY,
            calls=home / "mcp_calls.jsonl",
        )
    )
    key = str(issue(served, name="codex", scopes=["chat"])["secret"])
    return Codex(home, work, key)


def texts(messages: list[dict[str, object]], role: str) -> list[str]:
    return [str(m["content"]) for m in messages if m["role"] == role]


def answered(served: RunningServer, surface: str) -> float:
    """Requests headend answered on ``surface``, by its metrics."""
    text = httpx.get(served.base_url + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"})
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.text.splitlines()
        if line.startswith("headend_requests_total{") and f'surface="{surface}"' in line
    )


def test_a_prompt_on_the_default_model(
    served: RunningServer, codex: Codex, fake: FakeUpstream
) -> None:
    fake.script("x", Reply(text="Hello from headend."))
    before = answered(served, "responses_websocket"), answered(served, "responses")
    done = codex.run("Say hello")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Hello from headend." in done.stdout
    # Over the WebSocket, on Codex's defaults: its warm-up and the turn; no fallback to HTTP.
    after = answered(served, "responses_websocket"), answered(served, "responses")
    assert (after[0] - before[0], after[1] - before[1]) == (2, 0), done.stderr[-3000:]
    assert "falling back" not in done.stderr.lower()
    assert "reconnecting" not in done.stderr.lower()
    (seen,) = fake.received("x")
    assert seen.body["model"] == "sol"
    assert seen.body["stream"] is True
    assert texts(seen.body["messages"], "user")[-1] == "Say hello"
    assert any("Codex" in text for text in texts(seen.body["messages"], "developer"))
    # The tools came inside the input (responses-lite), and the model was offered them.
    offered = {tool["function"]["name"] for tool in seen.body["tools"]}
    assert "functions__exec" in offered


def test_the_event_stream(codex: Codex, fake: FakeUpstream) -> None:
    fake.script("x", Reply(text="one two three four", chunk_delay=0.05))
    done = codex.run("--json", "Count to four")
    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    messages = [
        e["item"]["text"]
        for e in events
        if e.get("type") == "item.completed" and e["item"].get("type") == "agent_message"
    ]
    assert messages == ["one two three four"]
    assert events[-1]["type"] == "turn.completed"


def test_an_mcp_tool_through_exec_on_the_default_model(codex: Codex, fake: FakeUpstream) -> None:
    script = "const r = await tools.mcp__tiny__add({a: 2, b: 3});\ntext(JSON.stringify(r));"
    call = {
        "id": "call_exec",
        "name": "functions__exec",
        "arguments": json.dumps({"input": script}),
    }
    fake.script("x", Reply(text="", tool_calls=[call]), Reply(text="The sum is 5."))
    done = codex.run("Add 2 and 3 with the tiny MCP server")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "The sum is 5." in done.stdout
    assert codex.calls() == [{"name": "add", "arguments": {"a": 2, "b": 3}}]
    _, second = fake.received("x")
    assistant, result = second.body["messages"][-2:]
    assert assistant["tool_calls"][0]["function"]["name"] == "functions__exec"
    assert (result["role"], result["tool_call_id"]) == ("tool", "call_exec")
    assert "5" in result["content"]


def test_an_mcp_namespace_tool_on_a_headend_model(codex: Codex, fake: FakeUpstream) -> None:
    call = {"id": "call_add", "name": "mcp__tiny__add", "arguments": '{"a": 20, "b": 22}'}
    fake.script("x", Reply(text="", tool_calls=[call]), Reply(text="It is 42."))
    done = codex.run("-m", "gpt", "Add 20 and 22 with the tiny MCP server")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "It is 42." in done.stdout
    assert codex.calls() == [{"name": "add", "arguments": {"a": 20, "b": 22}}]
    first, second = fake.received("x")
    assert first.body["model"] == "gpt"
    offered = {tool["function"]["name"] for tool in first.body["tools"]}
    assert {"mcp__tiny__add", "mcp__tiny__note"} <= offered
    result = second.body["messages"][-1]
    assert (result["role"], result["tool_call_id"]) == ("tool", "call_add")
    assert "42" in result["content"]


def test_a_resumed_conversation_after_a_tool(codex: Codex, fake: FakeUpstream) -> None:
    call = {"id": "call_note", "name": "mcp__tiny__note", "arguments": '{"text": "remember"}'}
    fake.script(
        "x",
        Reply(text="", tool_calls=[call]),
        Reply(text="Noted."),
        Reply(text="I wrote a note."),
    )
    first = codex.run("-m", "gpt", "Write a note with the tiny MCP server")
    assert first.returncode == 0, first.stderr[-3000:]
    done = codex.run("resume", "--last", "What did you just do?")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "I wrote a note." in done.stdout
    assert codex.calls() == [{"name": "note", "arguments": {"text": "remember"}}]
    resumed = fake.received("x")[-1].body
    # Resumed on Codex's default model (resume does not keep -m): the whole history is
    # resent, its namespace call flattened to the same name the first model saw.
    assert resumed["model"] == "sol"
    messages = resumed["messages"]
    assert texts(messages, "user")[-2:] == [
        "Write a note with the tiny MCP server",
        "What did you just do?",
    ]
    kinds = [m["role"] for m in messages if m["role"] != "developer"]
    assert kinds[-5:] == ["user", "assistant", "tool", "assistant", "user"]
    calls = [m for m in messages if m.get("tool_calls")]
    assert calls[-1]["tool_calls"][0]["function"]["name"] == "mcp__tiny__note"
    assert texts(messages, "assistant")[-1] == "Noted."


def test_a_guardrails_refusal_is_shown(
    served: RunningServer, codex: Codex, fake: FakeUpstream
) -> None:
    rules = [{"check": "regex", "patterns": ["(?i)nightjar"], "message": "Not that project."}]
    codex.key = str(issue(served, name="guarded", scopes=["chat"], guardrails=rules)["secret"])
    done = codex.run("What is project Nightjar?")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Not that project." in done.stdout, done.stderr[-3000:]
    assert fake.received("x") == []  # refused before any model call
