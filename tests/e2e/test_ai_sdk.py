"""The Vercel AI SDK (``@ai-sdk/openai``), unchanged and on its defaults, through its chat and
Responses providers: a two-turn conversation whose first turn runs a tool in the SDK. The
Responses provider stores by default and sends earlier answers back as ``item_reference``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.clients import CLIENTS, node_env, require_clients
from tests.conftest import RunningServer
from tests.e2e.sites import ADMIN, site_fixture
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

WEATHER_CALL = {"id": "call_w", "name": "weather", "arguments": json.dumps({"city": "Oslo"})}


served = site_fixture("v", before=require_clients)


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("mode", ["generate", "stream"])
def test_a_conversation_with_a_tool(
    served: RunningServer, fake: FakeUpstream, tmp_path: Path, api: str, mode: str
) -> None:
    log = tmp_path / "requests.jsonl"
    fake.script(
        "v",
        Reply(text="", tool_calls=[WEATHER_CALL]),
        Reply(text="Sunny in Oslo."),
        Reply(text="Rain tomorrow."),
    )
    done = subprocess.run(
        ["node", str(CLIENTS / "ai_sdk.mjs"), served.api, ADMIN, "gpt", api, mode],
        capture_output=True,
        text=True,
        timeout=60,
        env=node_env(REQUEST_LOG=str(log)),
        cwd=CLIENTS,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert json.loads(done.stdout) == {"first": "Sunny in Oslo.", "second": "Rain tomorrow."}
    calls = fake.received("v")
    assert len(calls) == 3
    # The tool's result reached the model, and the second turn carried the whole conversation.
    assert calls[1].body["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_w",
        "content": calls[1].body["messages"][-1]["content"],
    }
    assert "sunny in Oslo" in calls[1].body["messages"][-1]["content"]
    assert calls[2].body["messages"] == [
        {"role": "user", "content": "What is the weather in Oslo?"},
        {"role": "assistant", "content": "Sunny in Oslo."},
        {"role": "user", "content": "And tomorrow?"},
    ]
    if api == "responses":  # the SDK's default: earlier answers go back by reference
        third = json.loads(log.read_text().splitlines()[2])
        assert [item.get("type") for item in third["input"]] == [None, "item_reference", None]
