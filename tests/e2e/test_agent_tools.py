"""Agents that act: the tool loop over a scripted upstream, through the openai SDK and raw
SSE. The upstream answers with tool calls; headend runs them and feeds the results back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import cast

import httpx
import openai
import pytest
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageParam,
    ChatCompletionStreamOptionsParam,
)

from tests.conftest import RunningServer, start_server, stop_server
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]
CONFIG = """
server: {{keepalive_seconds: 0.3}}
providers:
  up: {{type: openai, base_url: "{url}/v1", retry: {{attempts: 1}}}}
"""
WORKER = """---
description: Computes and looks things up.
model: up/worker-model
tools: [calculator, current_time, http_fetch, terminal]
tool_timeouts: {terminal: 1}
max_iterations: 10
---
You work.
"""
BOSS = """---
description: Delegates.
model: up/boss-model
tools: ["agent:plain"]
---
You delegate.
"""
PLAIN = """---
description: Answers plainly.
model: up/plain-model
---
You answer.
"""


def call(name: str, arguments: dict[str, object], call_id: str | None = None) -> dict[str, str]:
    return {"id": call_id or f"call_{name}", "name": name, "arguments": json.dumps(arguments)}


@pytest.fixture(scope="module")
def agents_server(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    site = tmp_path_factory.mktemp("tools")
    (site / "agents").mkdir()
    for name, text in (("worker", WORKER), ("boss", BOSS), ("plain", PLAIN)):
        (site / "agents" / f"{name}.md").write_text(text)
    (site / "headend.yaml").write_text(CONFIG.format(url=upstream.url("t")))
    server = start_server(
        site / "agents", site / "server.log", "--config", str(site / "headend.yaml")
    )
    yield server
    stop_server(server)


@pytest.fixture
def client(agents_server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=agents_server.api, api_key="unused", max_retries=0, timeout=30)


def tool_results(seen_body: dict[str, object]) -> dict[str, str]:
    messages = seen_body["messages"]
    assert isinstance(messages, list)
    return {m["tool_call_id"]: m["content"] for m in messages if m["role"] == "tool"}


def test_tools_run_and_their_results_reach_the_model(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    fake.script(
        "t",
        Reply(
            text="",
            tool_calls=[
                call("calculator", {"expression": "(2 + 3) * 4"}, "c1"),
                call("current_time", {"timezone": "Europe/Oslo"}, "c2"),
            ],
        ),
        Reply(text="It is 20."),
    )
    reply = client.chat.completions.create(model="worker", messages=HI)
    assert reply.choices[0].message.content == "It is 20."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.tool_calls is None
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (10, 14)
    first, second = fake.received("t")
    offered = {tool["function"]["name"] for tool in first.body["tools"]}
    assert offered == {"calculator", "current_time", "http_fetch", "terminal"}
    results = tool_results(second.body)
    assert results["c1"] == "20"
    assert "Europe/Oslo" in results["c2"]
    assistant = second.body["messages"][-3]
    assert [c["id"] for c in assistant["tool_calls"]] == ["c1", "c2"]


def test_tool_calls_run_in_parallel(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script(
        "t",
        Reply(
            text="",
            tool_calls=[
                call("terminal", {"command": "sleep 0.6; echo a"}, "a"),
                call("terminal", {"command": "sleep 0.6; echo b"}, "b"),
            ],
        ),
        Reply(text="done"),
    )
    started = time.monotonic()
    client.chat.completions.create(model="worker", messages=HI)
    assert time.monotonic() - started < 1.1  # one after the other would take 1.2 s
    assert tool_results(fake.received("t")[1].body) == {
        "a": "exit code 0\na\n",
        "b": "exit code 0\nb\n",
    }


def test_tool_errors_and_timeouts_go_back_to_the_model(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    fake.script(
        "t",
        Reply(
            text="",
            tool_calls=[
                call("calculator", {"expression": "1 / 0"}, "div"),
                call("terminal", {"command": "sleep 5"}, "slow"),
                call("calculator", {"nope": 1}, "args"),
            ],
        ),
        Reply(text="Some tools failed."),
    )
    reply = client.chat.completions.create(model="worker", messages=HI)
    assert reply.choices[0].message.content == "Some tools failed."
    results = tool_results(fake.received("t")[1].body)
    assert results["div"].startswith("Error:")
    assert "division" in results["div"]
    assert results["slow"] == "Error: terminal did not finish within 1 s."
    assert results["args"].startswith("Error:")


def test_the_ssrf_guard_holds_inside_a_run(client: openai.OpenAI, fake: FakeUpstream) -> None:
    target = f"http://127.0.0.1:{fake.port}/x/v1/chat/completions"
    fake.script(
        "t",
        Reply(text="", tool_calls=[call("http_fetch", {"url": target}, "f")]),
        Reply(text="Could not fetch."),
    )
    client.chat.completions.create(model="worker", messages=HI)
    assert "refused" in tool_results(fake.received("t")[1].body)["f"]
    assert fake.received("x") == []


def test_the_iteration_cap_ends_with_length(client: openai.OpenAI, fake: FakeUpstream) -> None:
    loop_forever = [
        Reply(text="", tool_calls=[call("calculator", {"expression": "1+1"})]) for _ in range(3)
    ]
    fake.script("t", *loop_forever, Reply(text="Stopping here."))
    reply = client.chat.completions.create(
        model="worker", messages=HI, extra_body={"max_iterations": 3}
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.content == "Stopping here."
    seen = fake.received("t")
    assert len(seen) == 4
    assert [s.body["tool_choice"] for s in seen] == ["auto", "auto", "auto", "none"]


@pytest.mark.parametrize("value", [0, 51, "ten"])
def test_max_iterations_out_of_range_is_400(client: openai.OpenAI, value: object) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="worker", messages=HI, extra_body={"max_iterations": value}
        )
    assert caught.value.param == "max_iterations"


def test_client_tools_come_back_to_the_client(client: openai.OpenAI, fake: FakeUpstream) -> None:
    weather: ChatCompletionFunctionToolParam = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    fake.script(
        "t",
        Reply(text="", tool_calls=[call("invented_tool", {}, "x1")]),
        Reply(text="", tool_calls=[call("get_weather", {"city": "Oslo"}, "w1")]),
    )
    reply = client.chat.completions.create(model="worker", messages=HI, tools=[weather])
    assert reply.choices[0].finish_reason == "tool_calls"
    calls = reply.choices[0].message.tool_calls
    assert calls is not None
    assert all(c.type == "function" for c in calls)
    assert [c.function.name for c in calls if c.type == "function"] == ["get_weather"]
    first, second = fake.received("t")
    assert {t["function"]["name"] for t in first.body["tools"]} >= {"get_weather", "calculator"}
    # The model's call to a tool nobody offered went back to it as an error, not to the client.
    assert tool_results(second.body)["x1"].startswith("Error: there is no tool")

    messages: list[ChatCompletionMessageParam] = [
        *HI,
        cast(
            ChatCompletionAssistantMessageParam,
            reply.choices[0].message.model_dump(exclude_none=True),
        ),
        {"role": "tool", "tool_call_id": "w1", "content": "rain"},
    ]
    fake.script("t", Reply(text="Take an umbrella."))
    follow = client.chat.completions.create(model="worker", messages=messages, tools=[weather])
    assert follow.choices[0].message.content == "Take an umbrella."
    assert fake.received("t")[-1].body["messages"][-1]["content"] == "rain"


def test_client_tools_stream_back_as_tool_call_deltas(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    weather: ChatCompletionFunctionToolParam = {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {}},
    }
    fake.script("t", Reply(text="", tool_calls=[call("get_weather", {"city": "Rome"}, "w2")]))
    chunks = list(
        client.chat.completions.create(model="worker", messages=HI, tools=[weather], stream=True)
    )
    deltas = [
        c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls
    ]
    assert deltas[0][0].id == "w2"
    assert json.loads(deltas[0][0].function.arguments) == {"city": "Rome"}  # type: ignore[union-attr,arg-type]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_client_tool_named_like_an_agent_tool_is_400(client: openai.OpenAI) -> None:
    clash: ChatCompletionFunctionToolParam = {
        "type": "function",
        "function": {"name": "calculator", "parameters": {}},
    }
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="worker", messages=HI, tools=[clash])
    assert caught.value.param == "tools[0].function.name"


def test_an_agent_calls_another_agent(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script(
        "t",
        Reply(text="", tool_calls=[call("agent_plain", {"input": "What is 6*7?"})]),
        Reply(text="42"),
        Reply(text="The plain agent says 42."),
    )
    reply = client.chat.completions.create(model="boss", messages=HI)
    assert reply.choices[0].message.content == "The plain agent says 42."
    boss, plain, boss_again = fake.received("t")
    assert boss.body["model"] == "boss-model"
    assert plain.body["model"] == "plain-model"
    assert plain.body["messages"] == [
        {"role": "system", "content": "You answer."},
        {"role": "user", "content": "What is 6*7?"},
    ]
    assert tool_results(boss_again.body)["call_agent_plain"] == "42"


# ---- streaming and progress


def run_stream(
    server: RunningServer, headers: dict[str, str] | None = None, **options: object
) -> str:
    body: dict[str, object] = {"model": "worker", "messages": HI, "stream": True}
    if options:
        body["stream_options"] = options
    response = httpx.post(server.api + "/chat/completions", json=body, headers=headers, timeout=30)
    assert response.status_code == 200
    return response.text


def script_two_rounds(fake: FakeUpstream, command: str = "echo hi") -> None:
    fake.script(
        "t",
        Reply(text="Let me check. ", tool_calls=[call("terminal", {"command": command}, "t1")]),
        Reply(text="All done."),
    )


def test_a_stream_without_progress_is_a_plain_openai_stream(
    agents_server: RunningServer, fake: FakeUpstream
) -> None:
    script_two_rounds(fake)
    text = run_stream(agents_server)
    frames = [f for f in text.split("\n\n") if f]
    assert all(f.startswith("data: ") for f in frames)
    assert frames[-1] == "data: [DONE]"
    chunks = [json.loads(f[6:]) for f in frames[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == (
        "Let me check. All done."
    )
    assert [c["choices"][0]["finish_reason"] for c in chunks].count("stop") == 1
    assert all("tool_progress" not in c and "usage" not in c for c in chunks)


def test_progress_as_named_events(agents_server: RunningServer, fake: FakeUpstream) -> None:
    script_two_rounds(fake)
    text = run_stream(agents_server, include_tool_progress=True)
    events = [
        json.loads(f.split("data: ", 1)[1])
        for f in text.split("\n\n")
        if f.startswith("event: tool.progress\n")
    ]
    assert [e["type"] for e in events] == ["tool.started", "tool.completed"]
    assert events[0] == {
        "type": "tool.started",
        "tool_name": "terminal",
        "label": "$ echo hi",
        "iteration": 1,
    }
    assert events[1]["success"] is True
    assert events[1]["duration_ms"] >= 0


@pytest.mark.parametrize("header", ["X-Tool-Progress", "X-Hermes-Tool-Progress"])
def test_progress_headers(agents_server: RunningServer, fake: FakeUpstream, header: str) -> None:
    script_two_rounds(fake)
    assert "event: tool.progress" in run_stream(agents_server, headers={header: "1"})


def test_progress_as_chunks_through_the_sdk(client: openai.OpenAI, fake: FakeUpstream) -> None:
    script_two_rounds(fake, command="exit 1")
    chunks = list(
        client.chat.completions.create(
            model="worker",
            messages=HI,
            stream=True,
            # headend's own stream options, which the SDK does not know
            stream_options=cast(
                ChatCompletionStreamOptionsParam,
                {"include_tool_progress": True, "tool_progress_format": "chunk"},
            ),
        )
    )
    progress = [c for c in chunks if not c.choices]
    assert [p.model_extra["tool_progress"]["type"] for p in progress] == [  # type: ignore[index]
        "tool.started",
        "tool.completed",
    ]
    status = progress[1].model_extra["event"]  # type: ignore[index]
    assert status["type"] == "status"
    assert status["data"]["done"] is True
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Let me check. All done."


def test_long_tool_runs_keep_the_connection_alive(
    agents_server: RunningServer, fake: FakeUpstream
) -> None:
    script_two_rounds(fake, command="sleep 0.8")
    assert ": keepalive" in run_stream(agents_server)
