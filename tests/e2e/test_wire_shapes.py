"""Every object headend answers, on every surface, streamed or not, validated against the
published shapes: OpenAI's spec for chat, completions, responses, models and errors;
Anthropic's for messages, their events, count_tokens and errors. The next drift fails here."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping

import httpx
import pytest

from tests.conftest import RunningServer
from tests.e2e.sites import ADMIN, HI, site_fixture
from tests.spec import assert_anthropic, assert_openai, assert_sse
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

AGENTS = {
    "helper": "---\nmodel: up/helper\n---\nYou help.\n",
    "worker": "---\nmodel: up/worker\ntools: [calculator]\n---\nYou compute.\n",
}
CALL = {"id": "call_1", "name": "lookup", "arguments": json.dumps({"q": "sun"})}
LOOKUP = {
    "type": "function",
    "name": "lookup",
    "description": "Look it up.",
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    "strict": False,
}


site = site_fixture("w", AGENTS)


@pytest.fixture
def http(site: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=site.base_url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30
    ) as client:
        yield client


def post(http: httpx.Client, path: str, body: Mapping[str, object]) -> httpx.Response:
    response = http.post(path, json=body)
    assert response.status_code == 200, response.text
    return response


# ---- OpenAI chat completions and completions


@pytest.mark.parametrize("model", ["gpt", "helper", "worker"])
def test_chat_completions(http: httpx.Client, fake: FakeUpstream, model: str) -> None:
    assert_openai(
        "CreateChatCompletionResponse",
        post(http, "/v1/chat/completions", {"model": model, "messages": HI}).json(),
    )
    stream = post(
        http,
        "/v1/chat/completions",
        {"model": model, "messages": HI, "stream": True, "stream_options": {"include_usage": True}},
    )
    chunks = assert_sse("openai", "CreateChatCompletionStreamResponse", stream.text)
    assert chunks[-1]["usage"]["total_tokens"] > 0


def test_chat_completion_tool_calls(http: httpx.Client, fake: FakeUpstream) -> None:
    tools = [
        {"type": "function", "function": {"name": "lookup", "parameters": LOOKUP["parameters"]}}
    ]
    fake.script("w", Reply(text="", tool_calls=[CALL]), Reply(text="", tool_calls=[CALL]))
    body = {"model": "gpt", "messages": HI, "tools": tools}
    answer = post(http, "/v1/chat/completions", body).json()
    assert_openai("CreateChatCompletionResponse", answer)
    assert answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "lookup"
    stream = post(http, "/v1/chat/completions", {**body, "stream": True})
    assert_sse("openai", "CreateChatCompletionStreamResponse", stream.text)


def test_completions(http: httpx.Client, fake: FakeUpstream) -> None:
    assert_openai(
        "CreateCompletionResponse",
        post(http, "/v1/completions", {"model": "gpt", "prompt": "Say hi"}).json(),
    )
    stream = post(http, "/v1/completions", {"model": "gpt", "prompt": "Say hi", "stream": True})
    # The spec has no chunk schema for legacy completions; OpenAI's API (and so headend) sends
    # finish_reason null until the last chunk, which is checked as it is.
    chunks = [
        json.loads(line[6:]) for line in stream.text.splitlines() if line.startswith("data: {")
    ]
    for chunk in chunks[:-1]:
        assert chunk["choices"][0]["finish_reason"] is None
        chunk["choices"][0]["finish_reason"] = "stop"
    for chunk in chunks:
        assert_openai("CreateCompletionResponse", chunk)


def test_models(http: httpx.Client) -> None:
    listed = http.get("/v1/models").json()
    assert_openai("ListModelsResponse", listed)
    for model in listed["data"]:
        assert_openai("Model", http.get(f"/v1/models/{model['id']}").json())


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/chat/completions", {"model": "nope", "messages": HI}, 404),
        ("/v1/chat/completions", {"model": "gpt"}, 400),
        ("/v1/responses", {"model": "gpt", "input": []}, 400),
        ("/v1/completions", {"model": "gpt", "prompt": "x", "n": 2}, 400),
        ("/v1/sessions/sess_unknown", None, 404),
    ],
)
def test_openai_errors(
    http: httpx.Client, path: str, body: dict[str, object] | None, status: int
) -> None:
    response = http.get(path) if body is None else http.post(path, json=body)
    assert response.status_code == status
    assert_openai("ErrorResponse", response.json())
    unauthorised = httpx.post(http.base_url.join(path), json=body or {})
    assert unauthorised.status_code == 401
    assert_openai("ErrorResponse", unauthorised.json())


# ---- OpenAI responses


def test_responses_text(http: httpx.Client, fake: FakeUpstream) -> None:
    body = {"model": "helper", "input": "Hi", "instructions": "Be brief.", "metadata": {"k": "v"}}
    response = post(http, "/v1/responses", body).json()
    assert_openai("Response", response)
    assert "user" not in response  # a string or absent, never null
    assert response["usage"]["input_tokens_details"]["cache_write_tokens"] == 0
    assert_openai("Response", http.get(f"/v1/responses/{response['id']}").json())
    assert_openai(
        "ResponseItemList", http.get(f"/v1/responses/{response['id']}/input_items").json()
    )
    stream = post(http, "/v1/responses", {**body, "stream": True})
    events = assert_sse("openai", "ResponseStreamEvent", stream.text)
    assert events[-1]["type"] == "response.completed"


def test_responses_tool_calls_of_every_kind(http: httpx.Client, fake: FakeUpstream) -> None:
    tools = [
        LOOKUP,
        {
            "type": "namespace",
            "name": "mcp__files",
            "description": "Files.",
            "tools": [{**LOOKUP, "name": "read"}],
        },
        {"type": "custom", "name": "apply_patch", "description": "Patch files."},
        {"type": "web_search"},
    ]
    calls = [
        CALL,
        {"id": "call_2", "name": "mcp__files__read", "arguments": '{"q": "a"}'},
        {"id": "call_3", "name": "apply_patch", "arguments": json.dumps({"input": "*** Begin"})},
    ]
    fake.script("w", Reply(text="", tool_calls=calls), Reply(text="", tool_calls=calls))
    body = {"model": "gpt", "input": "Hi", "tools": tools}
    response = http.post("/v1/responses", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["x-headend-dropped-tools"] == "web_search"
    answer = response.json()
    assert_openai("Response", answer)
    kinds = [(item["type"], item.get("namespace"), item["name"]) for item in answer["output"]]
    assert kinds == [
        ("function_call", None, "lookup"),
        ("function_call", "mcp__files", "read"),
        ("custom_tool_call", None, "apply_patch"),
    ]
    assert answer["output"][2]["input"] == "*** Begin"
    stream = post(http, "/v1/responses", {**body, "stream": True})
    events = assert_sse("openai", "ResponseStreamEvent", stream.text)
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [(i["type"], i.get("namespace"), i["name"]) for i in done] == kinds


def test_a_failed_stream_is_a_valid_event(http: httpx.Client, fake: FakeUpstream) -> None:
    from tests.upstream import Status

    fake.script("w", Status(500), Status(500), Status(500))
    stream = post(http, "/v1/responses", {"model": "gpt", "input": "Hi", "stream": True})
    events = assert_sse("openai", "ResponseStreamEvent", stream.text)
    assert events[-1]["type"] == "response.failed"


# ---- Anthropic messages


@pytest.mark.parametrize("model", ["gpt", "helper", "worker"])
def test_messages(http: httpx.Client, fake: FakeUpstream, model: str) -> None:
    body = {"model": model, "max_tokens": 50, "messages": HI}
    message = post(http, "/v1/messages", body).json()
    assert_anthropic("Message", message)
    # Claude Code reads the cache counts: present, even though headend caches nothing.
    assert message["usage"]["cache_creation_input_tokens"] == 0
    assert message["usage"]["cache_read_input_tokens"] == 0
    stream = post(http, "/v1/messages", {**body, "stream": True})
    events = assert_sse("anthropic", "StreamEvent", stream.text)
    named = [line[7:] for line in stream.text.splitlines() if line.startswith("event: ")]
    assert named == [event["type"] for event in events]


def test_messages_tool_use(http: httpx.Client, fake: FakeUpstream) -> None:
    tools = [{"name": "lookup", "description": "Look it up.", "input_schema": LOOKUP["parameters"]}]
    fake.script(
        "w", Reply(text="Let me look.", tool_calls=[CALL]), Reply(text="", tool_calls=[CALL])
    )
    body = {"model": "gpt", "max_tokens": 50, "messages": HI, "tools": tools}
    message = post(http, "/v1/messages", body).json()
    assert_anthropic("Message", message)
    assert message["stop_reason"] == "tool_use"
    stream = post(http, "/v1/messages", {**body, "stream": True})
    assert_sse("anthropic", "StreamEvent", stream.text)


def test_count_tokens_and_anthropic_errors(http: httpx.Client, site: RunningServer) -> None:
    counted = post(http, "/v1/messages/count_tokens", {"model": "gpt", "messages": HI}).json()
    assert_anthropic("CountTokensResponse", counted)
    for body, status in (
        ({"model": "nope", "max_tokens": 5, "messages": HI}, 404),
        ({"model": "gpt", "messages": HI}, 400),
        ({"model": "gpt", "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]}, 400),
    ):
        response = http.post("/v1/messages", json=body)
        assert response.status_code == status
        assert_anthropic("ErrorResponse", response.json())
    unauthorised = httpx.post(site.base_url + "/v1/messages", json={})
    assert unauthorised.status_code == 401
    assert_anthropic("ErrorResponse", unauthorised.json())
