"""The server's own behaviour, in-process through httpx.ASGITransport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from headend.app import create_app
from headend.config import ServerSettings, Settings
from headend.errors import ProviderError
from tests.fakes import ScriptedProvider

QUESTION = [{"role": "user", "content": "hi"}]

AGENT = """---
description: test
model: [first, second]
temperature: 0.1
top_k: 5
pinned: [top_k]
---
Be brief.
"""


@pytest.fixture
def first() -> ScriptedProvider:
    return ScriptedProvider(name="first")


@pytest.fixture
def second() -> ScriptedProvider:
    return ScriptedProvider(name="second", texts=["from", " second"])


@pytest.fixture
async def http(
    tmp_path: Path, first: ScriptedProvider, second: ScriptedProvider
) -> AsyncIterator[httpx.AsyncClient]:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "bot.md").write_text(AGENT)
    settings = Settings(
        agents_dir=agents,
        server=ServerSettings(keepalive_seconds=0.05, max_body_bytes=4096),
        store="sqlite:///:memory:",
    )
    app = create_app(settings, providers={"first": first, "second": second})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def frames(body: str) -> list[str]:
    return [part for part in body.split("\n\n") if part]


async def test_agent_prompt_and_sampling_reach_the_provider(
    http: httpx.AsyncClient, first: ScriptedProvider
) -> None:
    response = await http.post(
        "/v1/chat/completions",
        json={"model": "bot", "messages": QUESTION, "temperature": 0.9, "top_k": 99, "seed": 4},
    )
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Hello world"
    body = first.calls[-1].body
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][1:] == QUESTION
    assert body["temperature"] == 0.9  # request overrides the default
    assert body["top_k"] == 5  # pinned: the request's 99 is ignored
    assert body["seed"] == 4


async def test_next_route_serves_when_the_first_fails_before_answering(
    http: httpx.AsyncClient, first: ScriptedProvider
) -> None:
    first.fail_before = ProviderError("first is down")
    response = await http.post("/v1/chat/completions", json={"model": "bot", "messages": QUESTION})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "from second"


async def test_stream_error_before_the_first_token_is_an_http_status(
    http: httpx.AsyncClient, first: ScriptedProvider, second: ScriptedProvider
) -> None:
    first.fail_before = second.fail_before = ProviderError("all down")
    response = await http.post(
        "/v1/chat/completions", json={"model": "bot", "messages": QUESTION, "stream": True}
    )
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "provider_error"


async def test_stream_error_after_the_first_token_is_an_error_frame_then_done(
    http: httpx.AsyncClient, first: ScriptedProvider
) -> None:
    first.fail_after = ProviderError("cut in the middle")
    response = await http.post(
        "/v1/chat/completions", json={"model": "bot", "messages": QUESTION, "stream": True}
    )
    assert response.status_code == 200
    parts = frames(response.text)
    assert parts[-1] == "data: [DONE]"
    error = json.loads(parts[-2].removeprefix("data: "))
    assert error["error"]["message"] == "cut in the middle"
    assert json.loads(parts[0].removeprefix("data: "))["choices"][0]["delta"]["role"] == "assistant"


async def test_silence_gets_a_keepalive_comment(
    http: httpx.AsyncClient, first: ScriptedProvider
) -> None:
    first.delay = 0.2  # four keepalive intervals of silence before the first token
    response = await http.post(
        "/v1/chat/completions", json={"model": "bot", "messages": QUESTION, "stream": True}
    )
    parts = frames(response.text)
    assert parts[0] == ": keepalive"
    assert 2 <= parts.count(": keepalive") <= 5  # one per 0.05 s of silence, and only then
    assert parts[-1] == "data: [DONE]"
    chunks = [json.loads(p.removeprefix("data: ")) for p in parts if p.startswith("data: {")]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello world"


async def test_a_plain_stream_has_no_comments_or_named_events(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/chat/completions", json={"model": "bot", "messages": QUESTION, "stream": True}
    )
    assert all(part.startswith("data: ") for part in frames(response.text))


async def test_body_limit_counts_the_bytes_received(http: httpx.AsyncClient) -> None:
    async def body() -> AsyncIterator[bytes]:
        # No content-length: the limit must hold while reading the stream.
        for _ in range(10):
            yield b" " * 1000

    response = await http.post("/v1/chat/completions", content=body())
    assert response.status_code == 413


async def test_health_and_models(http: httpx.AsyncClient) -> None:
    health = (await http.get("/health")).json()
    assert health["status"] == "ok"
    assert health["agents"] == 1
    models = (await http.get("/v1/models")).json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["bot"]
