"""Anthropic's Messages API through the official anthropic SDK: agents and model routes,
streaming and not, client tools, errors, keys and limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import cast

import anthropic
import httpx
import pytest
from anthropic.types import MessageParam, ToolParam, ToolUseBlockParam

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, issue, make_site, serve
from tests.upstream import FakeUpstream, Reply, Status

pytestmark = pytest.mark.e2e

HI: list[MessageParam] = [{"role": "user", "content": "Hi"}]
WEATHER: ToolParam = {
    "name": "weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def served(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    agents = {"helper": "---\nmodel: up/helper\n---\nBe helpful.\n"}
    server = serve(make_site(tmp_path_factory.mktemp("anthropic"), upstream, "m", agents))
    yield server
    stop_server(server)


def client(server: RunningServer, key: str = ADMIN) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key=key, max_retries=0)


def new_secret(server: RunningServer, **body: object) -> str:
    return str(issue(server, **body)["secret"])


def test_a_message_from_an_agent(served: RunningServer, fake: FakeUpstream) -> None:
    fake.script("m", Reply(text="Hello there", usage=(11, 2)))
    message = client(served).messages.create(
        model="helper",
        max_tokens=100,
        system="Answer in English.",
        messages=HI,
        stop_sequences=["END"],
        metadata={"user_id": "u-1"},
    )
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == "helper"
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello there"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 2)
    sent = fake.received("m")[0].body
    assert [m["role"] for m in sent["messages"]] == ["system", "system", "user"]
    assert sent["messages"][1]["content"] == "Answer in English."
    assert sent["max_tokens"] == 100
    assert sent["stop"] == ["END"]
    assert sent["user"] == "u-1"


def test_streaming_events_in_order(served: RunningServer, fake: FakeUpstream) -> None:
    fake.script("m", Reply(text="one two three", usage=(4, 3)))
    with client(served).messages.stream(model="gpt", max_tokens=50, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "one two three"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 3
    raw = httpx.post(
        served.base_url + "/v1/messages?beta=true",
        json={"model": "gpt", "max_tokens": 50, "messages": HI, "stream": True},
        headers={"x-api-key": ADMIN, "anthropic-version": "2023-06-01"},
    )
    names = [line[7:] for line in raw.text.splitlines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_client_tools_round_trip(served: RunningServer, fake: FakeUpstream) -> None:
    call = {"id": "call_1", "name": "weather", "arguments": '{"city": "Oslo"}'}
    fake.script("m", Reply(text="", tool_calls=[call]), Reply(text="", tool_calls=[call]))
    sdk = client(served)
    message = sdk.messages.create(
        model="gpt",
        max_tokens=50,
        messages=HI,
        tools=[WEATHER],
        tool_choice={"type": "any"},
    )
    assert message.stop_reason == "tool_use"
    use = message.content[0]
    assert use.type == "tool_use"
    assert (use.id, use.name, use.input) == ("call_1", "weather", {"city": "Oslo"})
    sent = fake.received("m")[0].body
    assert sent["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]
    assert sent["tool_choice"] == "required"
    with sdk.messages.stream(model="gpt", max_tokens=50, messages=HI, tools=[WEATHER]) as stream:
        streamed = stream.get_final_message()
    assert streamed.stop_reason == "tool_use"
    assert streamed.content[0].input == {"city": "Oslo"}  # type: ignore[union-attr]
    fake.script("m", Reply(text="Sunny."))
    answer = sdk.messages.create(
        model="gpt",
        max_tokens=50,
        tools=[WEATHER],
        messages=[
            *HI,
            {"role": "assistant", "content": [cast(ToolUseBlockParam, use.model_dump())]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "sun"}],
            },
        ],
    )
    assert answer.content[0].text == "Sunny."  # type: ignore[union-attr]
    history = fake.received("m")[-1].body["messages"]
    assert history[1]["tool_calls"][0]["function"]["name"] == "weather"
    assert json.loads(history[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Oslo"}
    assert history[2] == {"role": "tool", "tool_call_id": "call_1", "content": "sun"}


def test_count_tokens(served: RunningServer) -> None:
    short = client(served).messages.count_tokens(model="helper", messages=HI)
    longer = client(served).messages.count_tokens(
        model="helper", messages=[{"role": "user", "content": "Hi " * 300}]
    )
    assert 0 < short.input_tokens < longer.input_tokens


def test_errors_in_anthropics_shape(served: RunningServer, fake: FakeUpstream) -> None:
    sdk = client(served)
    with pytest.raises(anthropic.NotFoundError) as missing:
        sdk.messages.create(model="nope", max_tokens=5, messages=HI)
    assert missing.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": missing.value.body["error"]["message"]},  # type: ignore[index]
    }
    with pytest.raises(anthropic.BadRequestError) as bad:
        sdk.messages.create(model="gpt", max_tokens=0, messages=HI)
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(anthropic.AuthenticationError) as unknown:
        client(served, "sk-he-wrong").messages.create(model="gpt", max_tokens=5, messages=HI)
    assert unknown.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    reader = new_secret(served, name="reader", scopes=["models:read"])
    with pytest.raises(anthropic.PermissionDeniedError):
        client(served, reader).messages.create(model="gpt", max_tokens=5, messages=HI)
    only_helper = new_secret(served, name="helper-only", scopes=["chat"], agents=["helper"])
    with pytest.raises(anthropic.NotFoundError):
        client(served, only_helper).messages.create(model="gpt", max_tokens=5, messages=HI)
    fake.script("m", Status(500))
    with pytest.raises(anthropic.APIStatusError) as failed:
        sdk.messages.create(model="gpt", max_tokens=5, messages=HI)
    assert failed.value.status_code == 502
    assert failed.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    fake.script("m", Reply(text="a b c d e f", cut_after=3))
    with (
        pytest.raises(anthropic.APIError),
        sdk.messages.stream(model="gpt", max_tokens=5, messages=HI) as stream,
    ):
        for _ in stream:
            pass


def test_rate_limits_reach_anthropic_clients(served: RunningServer, fake: FakeUpstream) -> None:
    sdk = client(served, new_secret(served, name="rpm1", scopes=["chat"], rpm=1))
    raw = sdk.messages.with_raw_response.create(model="gpt", max_tokens=5, messages=HI)
    assert raw.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(anthropic.RateLimitError) as limited:
        sdk.messages.create(model="gpt", max_tokens=5, messages=HI)
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert int(limited.value.response.headers["retry-after"]) >= 1


def test_system_entries_inside_messages(served: RunningServer, fake: FakeUpstream) -> None:
    body = {
        "model": "gpt",
        "max_tokens": 20,
        "system": [
            {"type": "text", "text": "You are terse."},
            {"type": "text", "text": "Be kind."},
        ],
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "system", "content": [{"type": "text", "text": "The user is tired."}]},
            {"role": "user", "content": "How are you?"},
        ],
    }
    response = httpx.post(
        served.base_url + "/v1/messages", json=body, headers={"x-api-key": ADMIN}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert fake.received("m")[-1].body["messages"] == [
        {"role": "system", "content": "You are terse.\n\nBe kind."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "system", "content": "The user is tired."},
        {"role": "user", "content": "How are you?"},
    ]


def test_role_errors_use_anthropics_wording(served: RunningServer) -> None:
    with pytest.raises(anthropic.BadRequestError) as bad:
        client(served).messages.create(
            model="gpt",
            max_tokens=5,
            messages=[cast(MessageParam, {"role": "tool", "content": "x"})],  # a role it forbids
        )
    error = bad.value.body["error"]  # type: ignore[index]
    assert error["type"] == "invalid_request_error"
    assert error["message"] == (
        'messages: Unexpected role "tool". Allowed roles are "user", "assistant" or "system".'
    )
