"""The legacy Completions API through the openai SDK."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, make_site, serve
from tests.upstream import FakeUpstream, Reply, Status

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    agents = {"poet": "---\nmodel: up/poet\n---\nWrite verse.\n"}
    server = serve(make_site(tmp_path_factory.mktemp("completions"), upstream, "c", agents))
    yield server
    stop_server(server)


@pytest.fixture
def client(served: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.api, api_key=ADMIN, max_retries=0)


def test_a_prompt_and_a_list_of_prompts(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script("c", Reply(text="Roses are red", usage=(3, 4)))
    one = client.completions.create(model="poet", prompt="Once", max_tokens=20, stop=["\n"])
    assert one.object == "text_completion"
    assert one.model == "poet"
    assert one.choices[0].text == "Roses are red"
    assert one.choices[0].finish_reason == "stop"
    assert one.usage is not None
    assert one.usage.total_tokens == 7
    sent = fake.received("c")[0].body
    assert sent["messages"][-1] == {"role": "user", "content": "Once"}
    assert sent["max_tokens"] == 20
    assert sent["stop"] == ["\n"]
    fake.script("c", Reply(text="A"), Reply(text="B"))
    two = client.completions.create(model="gpt", prompt=["first", "second"], echo=True)
    assert [(c.index, c.text) for c in two.choices] == [(0, "firstA"), (1, "secondB")]


def test_streaming(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script("c", Reply(text="one two", usage=(2, 2)))
    chunks = list(
        client.completions.create(
            model="gpt", prompt="Count", stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(chunk.object == "text_completion" for chunk in chunks)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == "one two"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 2
    fake.script("c", Reply(text="x"))
    plain = list(client.completions.create(model="gpt", prompt="Count", stream=True))
    assert all(chunk.usage is None for chunk in plain)


def test_errors(client: openai.OpenAI, fake: FakeUpstream) -> None:
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="x")
    with pytest.raises(openai.BadRequestError) as tokens:
        client.completions.create(model="gpt", prompt=[1, 2, 3])
    assert tokens.value.param == "prompt"
    with pytest.raises(openai.BadRequestError) as suffix:
        client.completions.create(model="gpt", prompt="x", suffix="y")
    assert suffix.value.code == "unsupported_value"
    fake.script("c", Status(500))
    with pytest.raises(openai.APIStatusError) as failed:
        client.completions.create(model="gpt", prompt="x")
    assert failed.value.status_code == 502


def test_an_agents_session_comes_back_in_the_body_and_goes_on(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    """As on Chat Completions: in the answer, or the first chunk of a stream."""
    fake.script("c", Reply(text="Roses"), Reply(text="are red"), Reply(text="again"))
    first = client.completions.create(model="poet", prompt="Begin")
    session_id = (first.model_extra or {})["session_id"]
    assert session_id.startswith("sess_")
    chunks = list(
        client.completions.create(
            model="poet", prompt="Go on", stream=True, extra_body={"session_id": session_id}
        )
    )
    assert (chunks[0].model_extra or {})["session_id"] == session_id
    assert all("session_id" not in (chunk.model_extra or {}) for chunk in chunks[1:])
    sent = fake.received("c")[-1].body["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == ["Begin", "Go on"]
    plain = client.completions.create(model="gpt", prompt="Stateless")
    assert "session_id" not in (plain.model_extra or {})  # a model route keeps nothing
