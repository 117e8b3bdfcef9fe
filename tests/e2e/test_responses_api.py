"""OpenAI's Responses API through the openai SDK: answers, streams, function calls,
stored responses, continuation and branching, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import openai
import pytest
from openai.types.responses import (
    FunctionToolParam,
    ResponseInputItemParam,
    ResponseInputParam,
    ToolParam,
)
from openai.types.responses.namespace_tool_param import ToolFunction

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, issue, make_site, serve
from tests.upstream import FakeUpstream, Reply, Status

if TYPE_CHECKING:
    from anthropic.types import MessageParam

pytestmark = pytest.mark.e2e

# Without "strict", which the SDK's FunctionToolParam requires but the API does not.
WEATHER = cast(
    FunctionToolParam,
    {
        "type": "function",
        "name": "weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
)


@pytest.fixture(scope="module")
def served(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    agents = {
        "helper": "---\nmodel: up/helper\n---\nBe helpful.\n",
        "maths": "---\nmodel: up/maths\ntools: [calculator]\n---\n",
    }
    server = serve(make_site(tmp_path_factory.mktemp("responses"), upstream, "r", agents))
    yield server
    stop_server(server)


@pytest.fixture
def client(served: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.api, api_key=ADMIN, max_retries=0)


def sent(fake: FakeUpstream, index: int = -1) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = fake.received("r")[index].body["messages"]
    return messages


def test_a_response_and_its_continuation(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script("r", Reply(text="Paris.", usage=(9, 2)), Reply(text="About 2 million."))
    first = client.responses.create(
        model="gpt", input="Capital of France?", instructions="Be terse.", max_output_tokens=50
    )
    assert first.object == "response"
    assert first.status == "completed"
    assert first.output_text == "Paris."
    assert first.output[0].type == "message"
    assert first.usage is not None
    assert (first.usage.input_tokens, first.usage.output_tokens, first.usage.total_tokens) == (
        9,
        2,
        11,
    )
    assert sent(fake) == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert fake.received("r")[0].body["max_tokens"] == 50
    second = client.responses.create(
        model="gpt", input="Population?", previous_response_id=first.id
    )
    assert second.output_text == "About 2 million."
    assert second.previous_response_id == first.id
    # the history comes from the store; instructions are not carried over
    assert sent(fake) == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "Population?"},
    ]
    assert client.responses.retrieve(first.id).output_text == "Paris."
    items = list(client.responses.input_items.list(second.id))
    assert [item.type for item in items] == ["message"]


def test_branching_from_an_earlier_response(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script("r", Reply(text="A1"), Reply(text="B1"), Reply(text="C1"))
    root = client.responses.create(model="helper", input="root")
    client.responses.create(model="helper", input="left", previous_response_id=root.id)
    client.responses.create(model="helper", input="right", previous_response_id=root.id)
    contents = [m["content"] for m in sent(fake) if m["role"] != "system"]
    assert contents == ["root", "A1", "right"]  # "left" and its answer are another branch


def test_streaming_events(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script("r", Reply(text="one two three", usage=(3, 3)))
    with client.responses.stream(model="gpt", input="Count") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert set(kinds[4:-4]) == {"response.output_text.delta"}
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert final.output_text == "one two three"
    assert final.usage is not None
    assert final.usage.output_tokens == 3
    # stored before it said completed
    assert client.responses.retrieve(final.id).output_text == "one two three"


def test_function_calls_round_trip(client: openai.OpenAI, fake: FakeUpstream) -> None:
    call = {"id": "call_9", "name": "weather", "arguments": '{"city": "Oslo"}'}
    fake.script("r", Reply(text="", tool_calls=[call]), Reply(text="", tool_calls=[call]))
    asked = client.responses.create(model="gpt", input="Weather?", tools=[WEATHER])
    function_call = asked.output[0]
    assert function_call.type == "function_call"
    assert (function_call.call_id, function_call.name) == ("call_9", "weather")
    assert json.loads(function_call.arguments) == {"city": "Oslo"}
    assert fake.received("r")[0].body["tools"][0]["function"]["name"] == "weather"
    with client.responses.stream(model="gpt", input="Weather?", tools=[WEATHER]) as stream:
        kinds = [event.type for event in stream]
        streamed = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert streamed.output[0].type == "function_call"
    assert json.loads(streamed.output[0].arguments) == {"city": "Oslo"}
    fake.script("r", Reply(text="Sunny in Oslo."))
    answered = client.responses.create(
        model="gpt",
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": "call_9", "output": "sunny"}],
        tools=[WEATHER],
    )
    assert answered.output_text == "Sunny in Oslo."
    history = sent(fake)
    assert history[-2]["tool_calls"][0]["id"] == "call_9"
    assert history[-1] == {"role": "tool", "tool_call_id": "call_9", "content": "sunny"}


def test_items_as_input_and_not_storing(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script("r", Reply(text="ok"))
    response = client.responses.create(
        model="gpt",
        store=False,
        input=[
            {"role": "developer", "content": "Rules."},
            {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            # an assistant message without the id and status of the SDK's output message
            cast(
                ResponseInputItemParam,
                {"role": "assistant", "content": [{"type": "output_text", "text": "Hello"}]},
            ),
            {"role": "user", "content": "Again"},
        ],
    )
    assert response.store is False  # type: ignore[attr-defined]  # an extra field to the SDK
    assert [m["role"] for m in sent(fake)] == ["developer", "user", "assistant", "user"]
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_errors(client: openai.OpenAI, served: RunningServer, fake: FakeUpstream) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="gpt", input="x", previous_response_id="resp_nope")
    assert missing.value.code == "response_not_found"
    with pytest.raises(openai.BadRequestError) as tool:
        client.responses.create(
            model="gpt",
            input="x",
            tools=[{"type": "web_search_preview"}],
            tool_choice={"type": "web_search_preview"},
        )
    assert tool.value.code == "unsupported_value"
    assert tool.value.param == "tool_choice"
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="nope", input="x")
    fake.script("r", Status(500))
    with pytest.raises(openai.APIStatusError) as failed:
        client.responses.create(model="gpt", input="x")
    assert failed.value.status_code == 502
    fake.script("r", Status(500))
    with client.responses.stream(model="gpt", input="x") as stream:
        kinds = [event.type for event in stream]
    assert kinds[-1] == "response.failed"
    # responses belong to the key that made them
    fake.script("r", Reply(text="mine"))
    mine = client.responses.create(model="gpt", input="x")
    other = issue(served, name="other", scopes=["chat"])["secret"]
    stranger = openai.OpenAI(base_url=served.api, api_key=str(other), max_retries=0)
    with pytest.raises(openai.NotFoundError):
        stranger.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        stranger.responses.create(model="gpt", input="x", previous_response_id=mine.id)
    client.responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(mine.id)


@pytest.mark.parametrize("surface", ["responses", "responses stream", "messages stream"])
def test_an_agent_with_tools_runs_its_loop_on_every_surface(
    served: RunningServer, client: openai.OpenAI, fake: FakeUpstream, surface: str
) -> None:
    import anthropic

    calc = {"id": "c1", "name": "calculator", "arguments": '{"expression": "6 * 7"}'}
    fake.script("r", Reply(text="", tool_calls=[calc]), Reply(text="It is 42."))
    if surface == "responses":
        text = client.responses.create(model="maths", input="6*7?").output_text
    elif surface == "responses stream":
        with client.responses.stream(model="maths", input="6*7?") as stream:
            text = stream.get_final_response().output_text
    else:
        sdk = anthropic.Anthropic(base_url=served.base_url, api_key=ADMIN, max_retries=0)
        question: list[MessageParam] = [{"role": "user", "content": "6*7?"}]
        with sdk.messages.stream(model="maths", max_tokens=50, messages=question) as stream:
            text = "".join(stream.text_stream)
    assert text == "It is 42."
    assert sent(fake)[-1] == {"role": "tool", "tool_call_id": "c1", "content": "42"}


READ: ToolFunction = {
    "type": "function",
    "name": "read",
    "description": "Read a file",
    "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
    "strict": False,
}


def test_namespace_and_custom_tools_round_trip(client: openai.OpenAI, fake: FakeUpstream) -> None:
    tools: list[ToolParam] = [
        {"type": "namespace", "name": "mcp__files", "description": "Files", "tools": [READ]},
        {"type": "custom", "name": "apply_patch", "description": "Apply a patch"},
        {"type": "web_search", "external_web_access": False},
    ]
    fake.script(
        "r",
        Reply(
            text="",
            tool_calls=[
                {"id": "c1", "name": "mcp__files__read", "arguments": '{"path": "a.txt"}'},
                {"id": "c2", "name": "apply_patch", "arguments": '{"input": "*** Begin Patch"}'},
            ],
        ),
        Reply(text="Done."),
    )
    raw = client.responses.with_raw_response.create(
        model="gpt",
        input="Read a.txt",
        tools=tools,
        store=False,
    )
    assert raw.headers["x-headend-dropped-tools"] == "web_search"
    first = raw.parse()
    offered = fake.received("r")[0].body["tools"]
    assert [t["function"]["name"] for t in offered] == ["mcp__files__read", "apply_patch"]
    assert offered[1]["function"]["parameters"]["required"] == ["input"]
    call, patch = first.output[0].model_dump(), first.output[1].model_dump()
    assert (call["type"], call["namespace"], call["name"]) == (
        "function_call",
        "mcp__files",
        "read",
    )
    assert (patch["type"], patch["name"], patch["input"]) == (
        "custom_tool_call",
        "apply_patch",
        "*** Begin Patch",
    )
    # The client sends everything back, with its outputs: the model sees one name per tool.
    history: ResponseInputParam = [
        {"role": "user", "content": "Read a.txt"},
        # the output items as the SDK dumped them, less their id and status
        cast(ResponseInputItemParam, {k: v for k, v in call.items() if k not in ("id", "status")}),
        cast(ResponseInputItemParam, {k: v for k, v in patch.items() if k not in ("id", "status")}),
        {"type": "function_call_output", "call_id": "c1", "output": "hello"},
        {"type": "custom_tool_call_output", "call_id": "c2", "output": "patched"},
    ]
    second = client.responses.create(
        model="gpt",
        input=history,
        tools=tools,
        store=False,
    )
    assert second.output_text == "Done."
    messages = sent(fake)
    calls = messages[1]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["mcp__files__read", "apply_patch"]
    assert json.loads(calls[1]["function"]["arguments"]) == {"input": "*** Begin Patch"}
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "hello"},
        {"role": "tool", "tool_call_id": "c2", "content": "patched"},
    ]


def test_item_references_resolve_to_stored_items(
    client: openai.OpenAI, served: RunningServer, fake: FakeUpstream
) -> None:
    fake.script("r", Reply(text="Paris."), Reply(text="Two million."))
    first = client.responses.create(model="gpt", input="Capital of France?")
    answer_id = first.output[0].id
    assert answer_id is not None
    items: ResponseInputParam = [
        {"role": "user", "content": "Capital of France?"},
        {"type": "item_reference", "id": answer_id},
        {"role": "user", "content": "Population?"},
    ]
    second = client.responses.create(model="gpt", input=items)
    assert second.output_text == "Two million."
    assert sent(fake) == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "Population?"},
    ]
    calls = len(fake.received("r"))
    for stranger_key in (ADMIN, str(issue(served, name="stranger", scopes=["chat"])["secret"])):
        sdk = openai.OpenAI(base_url=served.api, api_key=stranger_key, max_retries=0)
        ref = "msg_unknown" if stranger_key == ADMIN else answer_id
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.responses.create(
                model="gpt",
                input=[{"type": "item_reference", "id": ref}],
            )
        assert refused.value.code == "item_not_found"
        assert refused.value.param == "input[0].id"
        assert ref in str(refused.value.message)
    assert len(fake.received("r")) == calls
