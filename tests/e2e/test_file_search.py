"""The Responses API's ``file_search`` tool, run by headend over its own vector stores: the
upstream model sees a function ``file_search(query)``; the client sees a ``file_search_call``
item (with its results when it includes them), the stream's file_search events, and
``file_citation`` annotations for the passages the answer cites. Driven by the openai SDK."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import (
    ResponseFileSearchToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)
from openai.types.responses.response_output_text import AnnotationFileCitation

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import issue, make_site, serve
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

PREFIX = "fs"
LIGHTHOUSE = "The lighthouse on Skerry Point was built in 1851 and its lamp is lit at dusk."
BAKERY = "The bakery on Mill Lane opens at six and sells rye bread on Saturdays."


@pytest.fixture(scope="module")
def site(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    server = serve(make_site(tmp_path_factory.mktemp("file-search"), upstream, PREFIX, {}))
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def client(site: RunningServer) -> openai.OpenAI:
    key = issue(site, name="searcher", scopes=["chat"])
    return openai.OpenAI(base_url=site.api, api_key=str(key["secret"]), max_retries=0)


@pytest.fixture(scope="module")
def store_id(client: openai.OpenAI) -> str:
    files = [
        client.files.create(file=(name, io.BytesIO(text.encode())), purpose="assistants").id
        for name, text in (("lighthouse.md", LIGHTHOUSE), ("bakery.md", BAKERY))
    ]
    store = client.vector_stores.create(name="town")
    client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id,
        files=[
            {"file_id": files[0], "attributes": {"topic": "sea"}},
            {"file_id": files[1], "attributes": {"topic": "food"}},
        ],
        poll_interval_ms=200,
    )
    return store.id


def search_then_answer(upstream: FakeUpstream, query: str, answer: str) -> None:
    upstream.reset()
    upstream.script(
        PREFIX,
        Reply(
            text="",
            tool_calls=[
                {"id": "call_1", "name": "file_search", "arguments": json.dumps({"query": query})}
            ],
        ),
        Reply(text=answer),
    )


def searched(item: object) -> ResponseFileSearchToolCall:
    assert isinstance(item, ResponseFileSearchToolCall), item
    return item


def cited(item: object) -> list[AnnotationFileCitation]:
    assert isinstance(item, ResponseOutputMessage), item
    part = item.content[0]
    assert isinstance(part, ResponseOutputText), part
    found = [a for a in part.annotations if isinstance(a, AnnotationFileCitation)]
    assert len(found) == len(part.annotations)
    return found


def tool(store_id: str, **extra: Any) -> Any:
    return {"type": "file_search", "vector_store_ids": [store_id], **extra}


def test_the_model_searches_and_the_answer_cites_the_file(
    client: openai.OpenAI, store_id: str, upstream: FakeUpstream
) -> None:
    search_then_answer(upstream, "when is the lamp lit", "It is lit at dusk [1].")
    response = client.responses.create(
        model="gpt",
        input="When is the lighthouse lamp lit?",
        tools=[tool(store_id)],
        include=["file_search_call.results"],
    )
    call = searched(response.output[0])
    assert call.status == "completed"
    assert call.queries == ["when is the lamp lit"]
    assert call.results is not None
    assert call.results[0].filename == "lighthouse.md"
    assert call.results[0].attributes == {"topic": "sea"}
    assert response.output_text == "It is lit at dusk [1]."
    (annotation,) = cited(response.output[-1])
    assert annotation.filename == "lighthouse.md"
    assert annotation.index == response.output_text.index("[1]")
    # The upstream saw a function tool taking a query, then the passages as its result.
    first, second = [r.body for r in upstream.received(PREFIX)]
    (offered,) = first["tools"]
    assert offered["function"]["name"] == "file_search"
    assert list(offered["function"]["parameters"]["properties"]) == ["query"]
    result = second["messages"][-1]
    assert result["role"] == "tool"
    assert "[1] lighthouse.md" in result["content"]
    assert LIGHTHOUSE in result["content"]


def test_results_are_left_out_unless_included(
    client: openai.OpenAI, store_id: str, upstream: FakeUpstream
) -> None:
    search_then_answer(upstream, "rye bread", "On Saturdays.")
    response = client.responses.create(model="gpt", input="Rye?", tools=[tool(store_id)])
    assert searched(response.output[0]).results is None
    stored = client.responses.retrieve(response.id)
    assert searched(stored.output[0]).queries == ["rye bread"]


def test_the_stream_shows_the_search_as_it_happens(
    client: openai.OpenAI, store_id: str, upstream: FakeUpstream
) -> None:
    search_then_answer(upstream, "bread", "Rye bread [1], opening at six [1].")
    kinds = []
    with client.responses.stream(
        model="gpt", input="Bread?", tools=[tool(store_id, max_num_results=1)]
    ) as stream:
        for event in stream:
            kinds.append(event.type)
        final = stream.get_final_response()
    searched = [k for k in kinds if "file_search" in k or "annotation" in k]
    assert searched == [
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.output_text.annotation.added",
        "response.output_text.annotation.added",
    ]
    assert kinds.index("response.file_search_call.completed") < kinds.index(
        "response.output_text.delta"
    )
    assert [a.filename for a in cited(final.output[-1])] == ["bakery.md", "bakery.md"]


def test_filters_and_options_reach_the_search(
    client: openai.OpenAI, store_id: str, upstream: FakeUpstream
) -> None:
    search_then_answer(upstream, "lighthouse lamp", "Nothing about that.")
    response = client.responses.create(
        model="gpt",
        input="Lamp?",
        tools=[tool(store_id, filters={"type": "eq", "key": "topic", "value": "food"})],
        include=["file_search_call.results"],
    )
    assert [r.filename for r in searched(response.output[0]).results or []] == ["bakery.md"]
    search_then_answer(upstream, "lighthouse lamp", "Nothing.")
    response = client.responses.create(
        model="gpt",
        input="Lamp?",
        tools=[
            tool(
                store_id,
                ranking_options={
                    "hybrid_search": {"embedding_weight": 0, "text_weight": 1},
                    "score_threshold": 0.99,
                },
            )
        ],
        include=["file_search_call.results"],
    )
    assert [r.filename for r in searched(response.output[0]).results or []] == ["lighthouse.md"]


def test_another_keys_store_is_a_404_naming_it(
    site: RunningServer, store_id: str, upstream: FakeUpstream
) -> None:
    other = issue(site, name="stranger", scopes=["chat"])
    stranger = openai.OpenAI(base_url=site.api, api_key=str(other["secret"]), max_retries=0)
    with pytest.raises(openai.NotFoundError) as caught:
        stranger.responses.create(model="gpt", input="Lamp?", tools=[tool(store_id)])
    assert store_id in caught.value.message
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["param"] == "tools[0].vector_store_ids"


def test_file_search_in_the_background(
    client: openai.OpenAI, store_id: str, upstream: FakeUpstream
) -> None:
    search_then_answer(upstream, "lamp", "At dusk [1].")
    queued = client.responses.create(
        model="gpt", input="Lamp?", tools=[tool(store_id)], background=True
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = client.responses.retrieve(queued.id)
        if done.status not in ("queued", "in_progress"):
            break
        time.sleep(0.2)
    assert done.status == "completed"
    assert [item.type for item in done.output] == ["file_search_call", "message"]
    assert cited(done.output[-1])[0].filename == "lighthouse.md"


def test_a_bad_file_search_tool_is_a_400(site: RunningServer, client: openai.OpenAI) -> None:
    headers = {"Authorization": f"Bearer {client.api_key}"}
    for bad in (
        {"type": "file_search"},
        {"type": "file_search", "vector_store_ids": []},
        {"type": "file_search", "vector_store_ids": ["vs_x"], "max_num_results": 99},
        {"type": "file_search", "vector_store_ids": ["vs_x"], "filters": {"type": "eq"}},
    ):
        answer = httpx.post(
            site.api + "/responses",
            json={"model": "gpt", "input": "hi", "tools": [bad]},
            headers=headers,
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"].startswith("tools[0]")


def test_file_search_over_the_websocket(
    client: openai.OpenAI, store_id: str, upstream: FakeUpstream
) -> None:
    search_then_answer(upstream, "lamp lit", "At dusk [1].")
    kinds: list[str] = []
    with client.responses.connect() as connection:
        connection.response.create(
            model="gpt",
            input="When is the lamp lit?",
            tools=[tool(store_id)],
            include=["file_search_call.results"],
        )
        for event in connection:
            kinds.append(event.type)
            if event.type == "response.completed":
                done = event.response
                break
    assert "response.file_search_call.completed" in kinds
    call = searched(done.output[0])
    assert (call.results or [])[0].filename == "lighthouse.md"
    assert cited(done.output[-1])[0].filename == "lighthouse.md"


def test_a_tool_choice_of_file_search_makes_the_model_search(
    client: openai.OpenAI, store_id: str, upstream: FakeUpstream
) -> None:
    search_then_answer(upstream, "lamp", "At dusk [1].")
    client.responses.create(
        model="gpt", input="Lamp?", tools=[tool(store_id)], tool_choice={"type": "file_search"}
    )
    first = upstream.received(PREFIX)[0].body
    assert first["tool_choice"] == {"type": "function", "function": {"name": "file_search"}}
