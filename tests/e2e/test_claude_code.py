"""Claude Code (``@anthropic-ai/claude-code``, pinned in tests/clients), unchanged and on its
defaults but for the base URL, the key and its telemetry: a plain prompt, a streamed one, a
tool round trip through an MCP server Claude Code itself runs (found with its ToolSearch, as
it does by default), and a resumed conversation.

Claude Code asks for its default model by name; headend routes that name to the fake
upstream, as an operator routes the names clients ask for."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.clients import BIN, MCP_TINY, mcp_calls, node_env, require_clients
from tests.conftest import RunningServer
from tests.e2e.sites import issue, site_fixture
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

DEFAULT_MODEL = "claude-opus-5-5"  # Claude Code 2.1.330's default
ROUTES = f"  {DEFAULT_MODEL}: up/opus\n"


@dataclass
class Claude:
    home: Path
    work: Path
    key: str
    base_url: str

    def run(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        mcp = {
            "mcpServers": {
                "tiny": {
                    "type": "stdio",
                    "command": sys.executable,
                    "args": [str(MCP_TINY)],
                    "env": {"MCP_CALLS": str(self.home / "mcp_calls.jsonl")},
                }
            }
        }
        config = self.home / "mcp.json"
        config.write_text(json.dumps(mcp))
        return subprocess.run(
            [str(BIN / "claude"), "-p", *args, "--mcp-config", str(config)],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            cwd=self.work,
            env=node_env(
                HOME=str(self.home), ANTHROPIC_BASE_URL=self.base_url, ANTHROPIC_API_KEY=self.key
            ),
        )

    def result(self, *args: str) -> dict[str, object]:
        done = self.run(*args, "--output-format", "json")
        assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
        found: dict[str, object] = json.loads(done.stdout)
        return found

    def calls(self) -> list[dict[str, object]]:
        return mcp_calls(self.home / "mcp_calls.jsonl")


served = site_fixture("c", None, ROUTES, before=require_clients)


@pytest.fixture
def claude(served: RunningServer, tmp_path: Path) -> Claude:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    key = str(issue(served, name="claude", scopes=["chat"])["secret"])
    return Claude(home, work, key, served.base_url)


def roles(messages: list[dict[str, object]]) -> list[object]:
    return [m["role"] for m in messages]


def test_a_prompt(claude: Claude, fake: FakeUpstream) -> None:
    fake.script("c", Reply(text="Hello from headend."))
    result = claude.result("Say hello")
    assert result["result"] == "Hello from headend."
    assert result["is_error"] is False
    (seen,) = fake.received("c")
    assert seen.body["model"] == "opus"
    messages = seen.body["messages"]
    # Its system prompt, its prompt, and the system entry it sends inside `messages`.
    assert roles(messages) == ["system", "user", "system"]
    assert "Say hello" in str(messages[1]["content"])
    assert "Environment" in messages[2]["content"]


def test_a_streamed_prompt(claude: Claude, fake: FakeUpstream) -> None:
    fake.script("c", Reply(text="one two three four", chunk_delay=0.05))
    done = claude.run("Count to four", "--output-format", "stream-json", "--verbose")
    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert events[0]["type"] == "system"
    assert events[-1]["type"] == "result"
    assert events[-1]["result"] == "one two three four"


def test_an_mcp_tool_found_with_tool_search(claude: Claude, fake: FakeUpstream) -> None:
    search = {
        "id": "toolu_1",
        "name": "ToolSearch",
        "arguments": '{"query": "select:mcp__tiny__add"}',
    }
    add = {"id": "toolu_2", "name": "mcp__tiny__add", "arguments": '{"a": 2, "b": 3}'}
    fake.script(
        "c",
        Reply(text="", tool_calls=[search]),
        Reply(text="", tool_calls=[add]),
        Reply(text="The sum is 5."),
    )
    result = claude.result(
        "Add 2 and 3 with the tiny MCP server", "--allowedTools", "mcp__tiny__add"
    )
    assert result["result"] == "The sum is 5."
    assert claude.calls() == [{"name": "add", "arguments": {"a": 2, "b": 3}}]
    _, second, third = fake.received("c")
    loaded = second.body["messages"][-2:]
    assert loaded[0] == {
        "role": "tool",
        "tool_call_id": "toolu_1",
        "content": "[tool loaded: mcp__tiny__add]",
    }
    assert "mcp__tiny__add" in {tool["function"]["name"] for tool in second.body["tools"]}
    answer = third.body["messages"][-1]
    assert (answer["role"], answer["tool_call_id"]) == ("tool", "toolu_2")
    assert "5" in answer["content"]


def test_a_resumed_conversation_after_a_tool(claude: Claude, fake: FakeUpstream) -> None:
    note = {"id": "toolu_n", "name": "mcp__tiny__note", "arguments": '{"text": "remember"}'}
    fake.script(
        "c",
        Reply(text="", tool_calls=[note]),
        Reply(text="Noted."),
        Reply(text="I wrote a note."),
    )
    allowed = ("--allowedTools", "mcp__tiny__note")
    first = claude.result("Write a note with the tiny MCP server", *allowed)
    assert first["result"] == "Noted."
    second = claude.result("What did you just do?", "--resume", str(first["session_id"]), *allowed)
    assert second["result"] == "I wrote a note."
    assert claude.calls() == [{"name": "note", "arguments": {"text": "remember"}}]
    messages = fake.received("c")[-1].body["messages"]
    assert [m["role"] for m in messages if m["role"] != "system"] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    call = next(m for m in messages if m.get("tool_calls"))
    assert call["tool_calls"][0]["function"]["name"] == "mcp__tiny__note"
    assert "What did you just do?" in str(messages[-1]["content"])


def test_a_guardrails_refusal_is_shown_as_its_answer(
    served: RunningServer, claude: Claude, fake: FakeUpstream
) -> None:
    rules = [{"check": "regex", "patterns": ["(?i)nightjar"], "message": "Not that project."}]
    claude.key = str(issue(served, name="guarded", scopes=["chat"], guardrails=rules)["secret"])
    result = claude.result("What is project Nightjar?")
    assert result["result"] == "Not that project."
    assert fake.received("c") == []  # refused before any model call
    fake.script("c", Reply(text="one two", chunk_delay=0.05))
    done = claude.run("Nightjar again", "--output-format", "stream-json", "--verbose")
    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert events[-1]["result"] == "Not that project."
