"""Python clients beyond the SDKs, unchanged: the ``llm`` CLI (an OpenAI-compatible model in
its ``extra-openai-models.yaml``, streaming by default, ``-c`` to continue) and LangChain's
``ChatOpenAI`` on chat completions and on the Responses API, with a tool."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI

from tests.conftest import RunningServer
from tests.e2e.sites import issue, site_fixture
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

WEATHER_CALL = {"id": "call_w", "name": "weather", "arguments": json.dumps({"city": "Oslo"})}


served = site_fixture("p")


@pytest.fixture(scope="module")
def key(served: RunningServer) -> str:
    return str(issue(served, name="python-clients", scopes=["chat", "models:read"])["secret"])


def llm(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLM_"))}
    return subprocess.run(
        [sys.executable, "-m", "llm", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "LLM_USER_PATH": str(home)},
    )


def test_the_llm_cli(served: RunningServer, key: str, fake: FakeUpstream, tmp_path: Path) -> None:
    (tmp_path / "extra-openai-models.yaml").write_text(
        f"- model_id: headend\n  model_name: gpt\n  api_base: {served.api}\n"
        "  api_key_name: headend\n"
    )
    (tmp_path / "keys.json").write_text(json.dumps({"headend": key}))
    fake.script(
        "p",
        Reply(text="one two three", chunk_delay=0.02),
        Reply(text="Four."),
        Reply(text="Five."),
    )
    streamed = llm(tmp_path, "-m", "headend", "Count to three")
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout.strip() == "one two three"
    assert fake.received("p")[0].body["stream"] is True
    continued = llm(tmp_path, "-c", "And then?")
    assert continued.returncode == 0, continued.stderr
    assert continued.stdout.strip() == "Four."
    assert [m["role"] for m in fake.received("p")[1].body["messages"]] == [
        "user",
        "assistant",
        "user",
    ]
    plain = llm(tmp_path, "-m", "headend", "--no-stream", "Five?")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() == "Five."


@pytest.mark.parametrize("responses", [False, True], ids=["chat", "responses"])
def test_langchain_with_a_tool(
    served: RunningServer, key: str, fake: FakeUpstream, responses: bool
) -> None:
    model = ChatOpenAI(
        model="gpt",
        base_url=served.api,
        api_key=key,
        use_responses_api=responses,
        max_retries=0,
    )
    weather = {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    fake.script("p", Reply(text="", tool_calls=[WEATHER_CALL]), Reply(text="Sunny in Oslo."))
    bound = model.bind_tools([weather])
    asked = HumanMessage("Weather in Oslo?")
    call = bound.invoke([asked])
    assert [(c["name"], c["args"]) for c in call.tool_calls] == [("weather", {"city": "Oslo"})]
    result = ToolMessage("sunny", tool_call_id=call.tool_calls[0]["id"])
    answer = bound.invoke([asked, call, result])
    assert answer.text == "Sunny in Oslo."
    assert fake.received("p")[-1].body["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_w",
        "content": "sunny",
    }
    fake.script("p", Reply(text="a b c", chunk_delay=0.02))
    streamed = "".join(chunk.text for chunk in model.stream("Say a b c"))
    assert streamed == "a b c"
