"""headend as a gateway: model routes and agents over fake upstreams that are real HTTP
servers, driven by the official openai SDK; every resilience behaviour under test."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import cast

import httpx
import openai
import pytest
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionChunk,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageParam,
)

from tests.conftest import RunningServer, free_port, start_server, stop_server
from tests.upstream import Bomb, FakeUpstream, Malformed, Reply, Reset, Status

pytestmark = pytest.mark.e2e

UPSTREAM_KEY = "sk-upstream-secret-0123456789"
ANTHROPIC_KEY = "sk-ant-secret-0123456789"
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]

CONFIG = """
providers:
  up:
    type: openai
    base_url: {a}/v1
    api_key: ${{UP_KEY}}
    retry: {{attempts: 3, backoff: 0.01, max_retry_after: 2}}
    timeout: {{connect: 1, first_token: 1.5, total: 10}}
    cooldown: {{after_failures: 1000}}
  backup:
    type: openai
    base_url: {b}/v1
    retry: {{attempts: 1}}
    cooldown: {{after_failures: 1000}}
  flaky:
    type: openai
    base_url: {f}/v1
    retry: {{attempts: 1}}
    cooldown: {{after_failures: 2, seconds: 60}}
  claude:
    type: anthropic
    base_url: {c}
    api_key: ${{ANT_KEY}}
    retry: {{attempts: 2, backoff: 0.01}}
  dead:
    type: openai
    base_url: http://127.0.0.1:{dead}/v1
    api_key: ${{UP_KEY}}
    retry: {{attempts: 2, backoff: 0.01}}
models:
  gpt: up/gpt-4o-mini
  chain: [up/gpt-4o-mini, backup/backup-model]
  flaky-chain: [flaky/m1, backup/m2]
  sonnet: claude/claude-sonnet-4
  "up/*": up
  deadend: dead/x
"""

HELPER = """---
description: Routed through the chain.
model: chain
temperature: 0.3
top_p: 0.5
pinned: [top_p]
---
You help.
"""


@pytest.fixture(scope="module")
def gateway(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    site = tmp_path_factory.mktemp("gateway")
    (site / "agents").mkdir()
    (site / "agents" / "helper.md").write_text(HELPER)
    config = site / "headend.yaml"
    config.write_text(
        CONFIG.format(
            a=upstream.url("a"),
            b=upstream.url("b"),
            f=upstream.url("f"),
            c=upstream.url("c"),
            dead=free_port(),
        )
    )
    server = start_server(
        site / "agents",
        site / "server.log",
        "--config",
        str(config),
        env={"UP_KEY": UPSTREAM_KEY, "ANT_KEY": ANTHROPIC_KEY},
    )
    yield server
    stop_server(server)
    log = server.output()
    assert UPSTREAM_KEY not in log
    assert ANTHROPIC_KEY not in log


@pytest.fixture
def client(gateway: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.api, api_key="unused", max_retries=0, timeout=30)


def streamed_arguments(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""  # type: ignore[union-attr]
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    )


def sse(response: httpx.Response) -> list[str]:
    return [line for line in response.text.split("\n\n") if line]


# ---- routing and passthrough


def test_an_alias_routes_to_its_provider_and_model(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    reply = client.chat.completions.create(model="gpt", messages=HI)
    assert reply.choices[0].message.content == "Hello from upstream"
    assert reply.model == "gpt"
    (seen,) = fake.received("a")
    assert seen.body["model"] == "gpt-4o-mini"
    assert seen.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_a_wildcard_passes_the_rest_of_the_name(client: openai.OpenAI, fake: FakeUpstream) -> None:
    reply = client.chat.completions.create(model="up/qwen3:8b", messages=HI)
    assert reply.model == "up/qwen3:8b"
    assert fake.received("a")[0].body["model"] == "qwen3:8b"


def test_models_lists_agents_and_aliases(client: openai.OpenAI) -> None:
    listed = {model.id: model.owned_by for model in client.models.list()}
    assert listed == {
        "helper": "headend",
        "gpt": "up",
        "chain": "up",
        "flaky-chain": "flaky",
        "sonnet": "claude",
        "deadend": "dead",
    }


def test_unknown_model_is_404(client: openai.OpenAI, fake: FakeUpstream) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="up", messages=HI)
    assert caught.value.code == "model_not_found"
    assert fake.received("a") == []


def test_the_request_reaches_the_upstream_unchanged_but_for_model(
    gateway: RunningServer, fake: FakeUpstream
) -> None:
    body = {
        "model": "gpt",
        "messages": HI,
        "temperature": 0.4,
        "seed": 9,
        "stop": ["\n\n"],
        "n": 2,
        "user": "u-1",
        "logprobs": True,
        "top_logprobs": 2,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "tool_choice": "auto",
        "vendor_knob": {"deep": [1, 2]},
    }
    fake.script("a", Reply(extra={"service_tier": "flex", "vendor_answer": {"x": 1}}))
    answer = httpx.post(gateway.api + "/chat/completions", json=body).json()
    assert fake.received("a")[0].body == {**body, "model": "gpt-4o-mini"}
    direct = {
        "id": "chatcmpl-upstream",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt",
        "system_fingerprint": "fp_upstream",
        "service_tier": "flex",
        "vendor_answer": {"x": 1},
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
        "choices": [
            {
                "index": 0,
                "logprobs": None,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Hello from upstream", "refusal": None},
            }
        ],
    }
    assert answer == direct


def test_tool_calling_through_a_plain_model_route(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    tools: list[ChatCompletionFunctionToolParam] = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    fake.script(
        "a",
        Reply(
            text="",
            tool_calls=[{"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}],
        ),
    )
    first = client.chat.completions.create(model="gpt", messages=HI, tools=tools)
    assert first.choices[0].message.tool_calls is not None
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    messages: list[ChatCompletionMessageParam] = [
        *HI,
        cast(
            ChatCompletionAssistantMessageParam,
            first.choices[0].message.model_dump(exclude_none=True),
        ),
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    second = client.chat.completions.create(model="gpt", messages=messages, tools=tools)
    assert second.choices[0].message.content == "Hello from upstream"
    sent = fake.received("a")[1].body["messages"]
    assert sent[-1] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    assert sent[-2]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_streamed_tool_calls_reach_the_sdk(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script(
        "a",
        Reply(
            text="",
            tool_calls=[{"id": "call_9", "name": "lookup", "arguments": '{"q": "headend"}'}],
        ),
    )
    chunks = list(client.chat.completions.create(model="gpt", messages=HI, stream=True))
    arguments = streamed_arguments(chunks)
    assert json.loads(arguments) == {"q": "headend"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


# ---- agents over upstreams


def test_an_agent_sends_its_prompt_and_sampling_upstream(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    reply = client.chat.completions.create(
        model="helper", messages=HI, temperature=0.9, top_p=0.99, max_completion_tokens=50
    )
    assert reply.model == "helper"
    body = fake.received("a")[0].body
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == [{"role": "system", "content": "You help."}, *HI]
    assert body["temperature"] == 0.9
    assert body["top_p"] == 0.5  # pinned
    assert body["max_completion_tokens"] == 50


# ---- streaming relay


def test_stream_relays_chunks_and_hides_usage_unless_asked(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    chunks = list(client.chat.completions.create(model="gpt", messages=HI, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Hello from upstream"
    )
    assert all(c.usage is None and c.choices for c in chunks)
    assert all(c.model == "gpt" for c in chunks)
    assert fake.received("a")[0].body["stream_options"] == {"include_usage": True}


def test_a_stream_without_usage_has_no_usage_key_at_all(
    gateway: RunningServer, fake: FakeUpstream
) -> None:
    response = httpx.post(
        gateway.api + "/chat/completions", json={"model": "gpt", "messages": HI, "stream": True}
    )
    frames = sse(response)
    assert frames[-1] == "data: [DONE]"
    chunks = [json.loads(frame.removeprefix("data: ")) for frame in frames[:-1]]
    assert all("usage" not in chunk and chunk["choices"] for chunk in chunks)


def test_stream_shows_usage_when_asked(client: openai.OpenAI, fake: FakeUpstream) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt", messages=HI, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 12


def test_stream_is_relayed_as_it_arrives(gateway: RunningServer, fake: FakeUpstream) -> None:
    fake.script("a", Reply(text="one two three four", chunk_delay=0.3))
    body = {"model": "gpt", "messages": HI, "stream": True}
    arrivals = []
    with httpx.stream("POST", gateway.api + "/chat/completions", json=body, timeout=10) as response:
        for line in response.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                arrivals.append(time.monotonic())
    assert len(arrivals) == 4
    # Buffered, they would arrive together at the end.
    assert arrivals[-1] - arrivals[0] > 0.6


def test_a_client_disconnect_cancels_the_upstream_request(
    gateway: RunningServer, fake: FakeUpstream
) -> None:
    fake.script("a", Reply(text=" ".join(["word"] * 100), chunk_delay=0.05))
    body = {"model": "gpt", "messages": HI, "stream": True}
    with httpx.stream("POST", gateway.api + "/chat/completions", json=body, timeout=10) as response:
        for number, _line in enumerate(response.iter_lines()):
            if number > 4:
                break
    left = time.monotonic()
    deadline = left + 3
    while fake.received("a")[0].disconnected_at is None and time.monotonic() < deadline:
        time.sleep(0.02)
    seen = fake.received("a")[0].disconnected_at
    assert seen is not None
    assert seen - left < 1.0


def test_a_client_leaving_a_non_streamed_request_ends_it_at_once(
    gateway: RunningServer, fake: FakeUpstream
) -> None:
    """The upstream is still thinking when the client hangs up: headend stops waiting for it
    then (its request is ended as 499), not when the upstream would have answered."""

    def closed() -> float:
        metrics = httpx.get(gateway.base_url + "/metrics").text
        found = re.search(
            r'^headend_requests_total\{model="gpt",status="499",surface="chat_completions"\} (\S+)',
            metrics,
            re.MULTILINE,
        )
        return float(found.group(1)) if found else 0.0

    before = closed()
    fake.script("a", Reply(first_delay=5.0))
    body = {"model": "gpt", "messages": HI}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gateway.api + "/chat/completions", json=body, timeout=0.5)
    left = time.monotonic()
    while closed() == before and time.monotonic() - left < 3:
        time.sleep(0.05)
    assert closed() == before + 1
    assert time.monotonic() - left < 2.0


def test_stream_failure_before_the_first_chunk_is_a_real_status(
    gateway: RunningServer, fake: FakeUpstream
) -> None:
    fake.script("a", Status(500), Status(500), Status(500))
    response = httpx.post(
        gateway.api + "/chat/completions", json={"model": "gpt", "messages": HI, "stream": True}
    )
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    assert "up/gpt-4o-mini" in response.json()["error"]["message"]


def test_a_stream_cut_in_the_middle_ends_with_an_error_frame(
    gateway: RunningServer, fake: FakeUpstream
) -> None:
    fake.script("a", Reply(text="a b c d e f", cut_after=3))
    response = httpx.post(
        gateway.api + "/chat/completions", json={"model": "gpt", "messages": HI, "stream": True}
    )
    assert response.status_code == 200
    frames = sse(response)
    assert frames[-1] == "data: [DONE]"
    error = json.loads(frames[-2].removeprefix("data: "))["error"]
    assert "up" in error["message"]
    assert len(fake.received("a")) == 1  # nothing is retried once bytes reached the client


def test_malformed_stream_event_before_output_is_retried(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    fake.script("a", Malformed())
    chunks = list(client.chat.completions.create(model="gpt", messages=HI, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(fake.received("a")) == 2


def test_an_answer_that_expands_past_the_limit_is_a_502_naming_why(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    # 130 MiB of zeros in about 130 kB of gzip: the upstream client stops at 128 MiB.
    bomb = Bomb.expanding_to(130 * 1024 * 1024)
    fake.script("a", bomb, bomb, bomb)
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="gpt", messages=HI)
    assert raised.value.status_code == 502
    assert "the answer expands past 128 MiB decompressed" in raised.value.message


# ---- resilience


def test_5xx_is_retried(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script("a", Status(500), Status(503))
    assert client.chat.completions.create(model="gpt", messages=HI).choices[0].message.content
    assert len(fake.received("a")) == 3


def test_429_honours_retry_after(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script("a", Status(429, headers={"Retry-After": "0.5"}))
    started = time.monotonic()
    client.chat.completions.create(model="gpt", messages=HI)
    seen = fake.received("a")
    assert len(seen) == 2
    assert seen[1].started - seen[0].started >= 0.5
    assert time.monotonic() - started < 5


def test_a_long_retry_after_moves_on_to_the_fallback(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    fake.script("a", Status(429, headers={"Retry-After": "120"}))
    reply = client.chat.completions.create(model="chain", messages=HI)
    assert reply.model == "chain"
    assert len(fake.received("a")) == 1
    assert fake.received("b")[0].body["model"] == "backup-model"


def test_a_connection_reset_is_retried(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script("a", Reset())
    assert client.chat.completions.create(model="gpt", messages=HI).choices[0].message.content
    assert len(fake.received("a")) == 2


def test_malformed_json_moves_to_the_fallback(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script("a", Malformed())
    reply = client.chat.completions.create(model="chain", messages=HI)
    assert reply.choices[0].message.content == "Hello from upstream"
    assert len(fake.received("b")) == 1


def test_a_slow_first_token_times_out_and_falls_back(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    fake.script("a", Reply(first_delay=3))
    started = time.monotonic()
    reply = client.chat.completions.create(model="chain", messages=HI, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
    assert time.monotonic() - started < 3
    assert len(fake.received("b")) == 1


def test_a_timeout_with_nowhere_to_go_is_504(gateway: RunningServer, fake: FakeUpstream) -> None:
    fake.script("a", Reply(first_delay=3))
    response = httpx.post(
        gateway.api + "/chat/completions", json={"model": "gpt", "messages": HI}, timeout=10
    )
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "provider_timeout"


def test_the_upstreams_own_400_reaches_the_client_untried(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    fake.script(
        "a",
        Status(
            400,
            body={
                "error": {
                    "message": "bad temperature",
                    "type": "invalid_request_error",
                    "param": "temperature",
                    "code": "invalid_value",
                }
            },
        ),
    )
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="chain", messages=HI)
    assert caught.value.param == "temperature"
    assert "bad temperature" in caught.value.message
    assert len(fake.received("a")) == 1
    assert fake.received("b") == []


def test_an_upstream_refusing_its_key_falls_back_and_never_shows_the_key(
    gateway: RunningServer, fake: FakeUpstream
) -> None:
    fake.script("a", Status(401, body={"error": {"message": f"Incorrect API key {UPSTREAM_KEY}"}}))
    response = httpx.post(gateway.api + "/chat/completions", json={"model": "gpt", "messages": HI})
    assert response.status_code == 502
    assert UPSTREAM_KEY not in response.text
    assert "up" in response.json()["error"]["message"]


def test_every_upstream_failing_is_502_naming_each(
    gateway: RunningServer, fake: FakeUpstream
) -> None:
    fake.script("a", Status(500), Status(500), Status(500))
    fake.script("b", Status(503))
    response = httpx.post(
        gateway.api + "/chat/completions", json={"model": "chain", "messages": HI}
    )
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert "up/gpt-4o-mini" in message
    assert "backup/backup-model" in message


def test_connection_refused_is_502_without_the_key(gateway: RunningServer) -> None:
    response = httpx.post(
        gateway.api + "/chat/completions", json={"model": "deadend", "messages": HI}
    )
    assert response.status_code == 502
    assert "dead" in response.json()["error"]["message"]
    assert UPSTREAM_KEY not in response.text


def test_a_failing_provider_cools_down(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script("f", Status(500), Status(500), Status(500))
    for _ in range(3):
        assert client.chat.completions.create(model="flaky-chain", messages=HI).model == (
            "flaky-chain"
        )
    # Two failures in a row cool it down: the third request goes straight to the backup.
    assert len(fake.received("f")) == 2
    assert len(fake.received("b")) == 3


# ---- headers


def test_every_response_carries_request_id_and_overhead(
    gateway: RunningServer, fake: FakeUpstream
) -> None:
    responses = [
        httpx.post(gateway.api + "/chat/completions", json={"model": "gpt", "messages": HI}),
        httpx.post(
            gateway.api + "/chat/completions", json={"model": "gpt", "messages": HI, "stream": True}
        ),
        httpx.post(gateway.api + "/chat/completions", json={"model": "nope", "messages": HI}),
        httpx.get(gateway.api + "/models"),
        httpx.get(gateway.base_url + "/health"),
    ]
    for response in responses:
        assert response.headers["x-request-id"]
        assert float(response.headers["x-headend-overhead-ms"]) >= 0
    ids = {response.headers["x-request-id"] for response in responses}
    assert len(ids) == len(responses)
    given = httpx.get(gateway.api + "/models", headers={"x-request-id": "trace-42"})
    assert given.headers["x-request-id"] == "trace-42"
    httpx.post(
        gateway.api + "/chat/completions",
        json={"model": "gpt", "messages": HI},
        headers={"x-request-id": "trace-43"},
    )
    assert fake.received("a")[-1].headers["x-request-id"] == "trace-43"


def test_overhead_excludes_the_time_spent_waiting_upstream(
    gateway: RunningServer, fake: FakeUpstream
) -> None:
    fake.script("a", Reply(first_delay=0.5))
    response = httpx.post(gateway.api + "/chat/completions", json={"model": "gpt", "messages": HI})
    assert response.elapsed.total_seconds() >= 0.5
    assert float(response.headers["x-headend-overhead-ms"]) < 100


# ---- anthropic


def test_anthropic_translation_both_ways(client: openai.OpenAI, fake: FakeUpstream) -> None:
    tools: list[ChatCompletionFunctionToolParam] = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    fake.script(
        "c",
        Reply(
            text="Let me check.",
            tool_calls=[{"id": "toolu_1", "name": "get_weather", "arguments": '{"city": "Oslo"}'}],
        ),
    )
    reply = client.chat.completions.create(
        model="sonnet",
        tools=tools,
        max_tokens=100,
        temperature=1.7,
        stop=["END"],
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather?"},
        ],
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.id == "toolu_1"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == 5
    assert reply.usage.completion_tokens == 7
    seen = fake.received("c")[0]
    assert seen.headers["x-api-key"] == ANTHROPIC_KEY
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.body["model"] == "claude-sonnet-4"
    assert seen.body["system"] == "Be brief."
    assert seen.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]}
    ]
    assert seen.body["max_tokens"] == 100
    assert seen.body["temperature"] == 1.0
    assert seen.body["stop_sequences"] == ["END"]
    assert seen.body["tools"][0]["input_schema"]["properties"] == {"city": {"type": "string"}}

    follow: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "Weather?"},
        cast(ChatCompletionAssistantMessageParam, choice.message.model_dump(exclude_none=True)),
        {"role": "tool", "tool_call_id": "toolu_1", "content": "rainy"},
    ]
    client.chat.completions.create(model="sonnet", messages=follow, tools=tools)
    sent = fake.received("c")[1].body["messages"]
    assert sent[1]["role"] == "assistant"
    assert sent[1]["content"][-1] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "get_weather",
        "input": {"city": "Oslo"},
    }
    assert sent[2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "rainy"}],
    }
    assert seen.body["max_tokens"] == 100


def test_anthropic_stream_becomes_chunks(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script(
        "c",
        Reply(
            text="Bonjour tout le monde",
            tool_calls=[{"id": "toolu_2", "name": "f", "arguments": '{"a": 1}'}],
        ),
    )
    chunks = list(
        client.chat.completions.create(
            model="sonnet", messages=HI, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Bonjour tout le monde"
    arguments = streamed_arguments(chunks)
    assert json.loads(arguments) == {"a": 1}
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["tool_calls"]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 7
    assert chunks[-1].usage.prompt_tokens == 5


def test_anthropic_overload_is_retried(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script(
        "c",
        Status(
            529,
            body={"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        ),
    )
    assert client.chat.completions.create(model="sonnet", messages=HI).choices[0].message.content
    assert len(fake.received("c")) == 2
